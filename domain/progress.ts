// How long work tells whoever runs it that it is still alive. The domain library knows nothing of
// Temporal: an activity hands it a Progress whose heartbeats go out only while work moves.
export interface Progress {
  readonly signal?: AbortSignal;
  /** Work moved (bytes arrived, a probe answered, a program printed); `detail` is what people see. */
  moved(detail?: unknown): void;
  /**
   * Local work that cannot stall unseen (a process of ours under its own timeout, a server loading a
   * file from this disk): alive for as long as it runs.
   */
  alive<T>(work: Promise<T>): Promise<T>;
}

/** What people see of a step that moves bytes: `bytes` so far of the `total` expected, when known. */
export interface BytesMoved {
  phase: string;
  bytes: number;
  total?: number;
}

/** For callers with nobody to tell (the CLI, tests). */
export const quietProgress = (signal?: AbortSignal): Progress => ({ signal, moved: () => {}, alive: (w) => w });

/**
 * An `onBytes` for a step that reads a known amount (a stored copy: the manifest's size): each chunk
 * counts, and the heartbeat says how far along the step is.
 */
export function countingBytes(p: Progress, phase: string, total?: number): (n: number) => void {
  let bytes = 0;
  return (n) => {
    bytes += n;
    p.moved(total ? ({ phase, bytes, total } satisfies BytesMoved) : ({ phase, bytes } satisfies BytesMoved));
  };
}
