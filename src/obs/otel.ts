/**
 * Turns on the OpenTelemetry Node SDK for `sluice serve`, the standard way: only when the `OTEL_*`
 * environment asks for traces (`OTEL_TRACES_EXPORTER` other than `none`, or an OTLP endpoint in
 * `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`). The SDK
 * (`@opentelemetry/sdk-node`, an optional dependency) is imported then and only then, so the
 * library and a server without those variables never load it; it reads every other setting
 * (exporter protocol, headers, sampler, `OTEL_SERVICE_NAME`, …) from the environment itself.
 * @module
 */

import { SluiceError } from '../protocol/errors.ts';
import type { Logger } from '../runtime/logger.ts';

/** A started SDK. */
export interface OtelHandle {
  /** Flushes pending spans and stops the SDK. */
  shutdown(): Promise<void>;
}

/** Whether the environment asks for traces. */
export function otelRequested(env: Record<string, string | undefined>): boolean {
  const exporter = env.OTEL_TRACES_EXPORTER?.trim().toLowerCase();
  if (exporter === 'none' || env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return false;
  if (exporter !== undefined && exporter !== '') return true;
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim());
}

/**
 * Starts the Node SDK when {@link otelRequested}; resolves to null otherwise. Throws
 * `failed_precondition` when traces are asked for but the SDK package is not installed.
 */
export async function startOtelFromEnv(env: Record<string, string | undefined>, logger: Logger): Promise<OtelHandle | null> {
  if (!otelRequested(env)) return null;
  let sdkModule: { NodeSDK: new (config: Record<string, unknown>) => { start(): void; shutdown(): Promise<void> } };
  try {
    // A computed specifier: an optional dependency, absent from a lean install.
    const name = '@opentelemetry/sdk-node';
    sdkModule = (await import(name)) as typeof sdkModule;
  } catch (error) {
    throw new SluiceError(
      'failed_precondition',
      `OTEL_* variables ask for traces but @opentelemetry/sdk-node is not installed (npm install @opentelemetry/sdk-node): ${(error as Error).message}`,
      { cause: error },
    );
  }
  const config: Record<string, unknown> = { instrumentations: [] };
  if (env.OTEL_SERVICE_NAME === undefined || env.OTEL_SERVICE_NAME === '') config.serviceName = 'sluice';
  const sdk = new sdkModule.NodeSDK(config);
  sdk.start();
  logger.info({ exporter: env.OTEL_TRACES_EXPORTER ?? 'otlp', endpoint: env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? env.OTEL_EXPORTER_OTLP_ENDPOINT }, 'OpenTelemetry tracing is on');
  return { shutdown: () => sdk.shutdown() };
}
