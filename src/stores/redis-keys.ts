/**
 * The Redis keys of a deployment. Every key of a run carries the run id as its hash tag
 * (`<prefix>:run:{<id>}:log`), so a run's keys share a cluster slot and a script may touch them
 * together; the prefix lets several deployments (or tests) share one Redis.
 * @module
 */

import { SluiceError } from '../protocol/errors.ts';

/** Key names under one prefix. */
export class RedisKeys {
  readonly prefix: string;

  /** Throws `invalid_argument` for a prefix with braces (they would change the hash tag) or spaces. */
  constructor(prefix: string) {
    if (typeof prefix !== 'string' || prefix === '' || /[{}\s]/.test(prefix)) {
      throw new SluiceError('invalid_argument', `Invalid Redis key prefix ${JSON.stringify(prefix)}: use a non-empty string without braces or spaces`);
    }
    this.prefix = prefix;
  }

  /** The stream of a run's events. */
  log(runId: string): string {
    return `${this.prefix}:run:{${runId}}:log`;
  }

  /** A run's metadata hash: action, owner, state, instance, started. */
  meta(runId: string): string {
    return `${this.prefix}:run:{${runId}}:meta`;
  }

  /** responseId → runId, so an ack by response id finds the run on any instance. */
  response(responseId: string): string {
    return `${this.prefix}:resp:{${responseId}}`;
  }

  /** An instance's lease: it exists while the instance is alive. */
  lease(instanceId: string): string {
    return `${this.prefix}:instance:{${instanceId}}:lease`;
  }

  /** Durable control marks for an instance (a list it pops on every heartbeat). */
  controls(instanceId: string): string {
    return `${this.prefix}:instance:{${instanceId}}:control`;
  }

  /** The pub/sub channel of an instance's control messages. */
  channel(instanceId: string): string {
    return `${this.prefix}:instance:{${instanceId}}:channel`;
  }
}
