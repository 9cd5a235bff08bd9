/** RoIs in flight on a queue's workers: at most `size` at once; the first failure stops the run. */
export class Pool {
  private running = new Set<Promise<unknown>>();
  private failure: { e: unknown } | undefined;
  constructor(private size: number) {}
  async add(p: Promise<unknown>): Promise<void> {
    const tracked: Promise<unknown> = p.then(
      () => this.running.delete(tracked),
      (e) => {
        this.running.delete(tracked);
        this.failure ??= { e };
      },
    );
    this.running.add(tracked);
    while (this.running.size >= this.size && !this.failure) await Promise.race(this.running);
    if (this.failure) throw this.failure.e;
  }
  /** Waits for the RoIs in flight, or for the first failure: the others' jobs stay queued (a rerun re-attaches to them). */
  async all(): Promise<void> {
    while (this.running.size > 0 && !this.failure) await Promise.race(this.running);
    if (this.failure) throw this.failure.e;
  }
}
