// Undo as you go (the Temporal saga sample): each step that changes something pushes its undo beside
// it, newest first. An undo that has run is dropped, so it never runs twice and the report never
// claims a failure that did not happen.
import { messageOf } from '../common/failure';

export interface Undo {
  name: string;
  run: () => Promise<unknown>;
}

export interface UndoOutcome {
  name: string;
  ok: boolean;
  detail: string;
}

export class Saga {
  private undos: Undo[] = [];

  /** Pushes an undo; returns a way to drop it when its step no longer needs undoing. */
  push(name: string, run: () => Promise<unknown>): () => void {
    const undo = { name, run };
    this.undos.unshift(undo);
    return () => {
      this.undos = this.undos.filter((u) => u !== undo);
    };
  }

  get pending(): readonly Undo[] {
    return this.undos;
  }

  /** Runs every pending undo, newest first; each is dropped once done. Stops at the first failure. */
  async runAll(): Promise<void> {
    while (this.undos.length) {
      await this.undos[0]!.run();
      this.undos.shift();
    }
  }

  /** Runs every pending undo, newest first, whatever fails: what each came to. */
  async compensate(): Promise<UndoOutcome[]> {
    const out: UndoOutcome[] = [];
    for (const u of [...this.undos]) {
      try {
        const detail = await u.run();
        out.push({ name: u.name, ok: true, detail: typeof detail === 'string' ? detail : 'done' });
        this.undos = this.undos.filter((x) => x !== u);
      } catch (err) {
        out.push({ name: u.name, ok: false, detail: messageOf(err) });
      }
    }
    return out;
  }
}
