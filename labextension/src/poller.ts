/**
 * Refresh while kernels write: poll a cheap change marker, quickly after a change,
 * backing off while nothing happens or the server fails, and idling while hidden.
 */

export interface PollerOptions {
  minMs: number;
  maxMs: number;
  errorMaxMs: number;
  factor: number;
}

const DEFAULTS: PollerOptions = { minMs: 1000, maxMs: 8000, errorMaxMs: 30000, factor: 1.5 };

export class ChangePoller {
  private delay: number;
  private timer: number | null = null;
  private running = false;
  private readonly options: PollerOptions;

  /** check() resolves true when something changed; active() says whether anyone looks. */
  constructor(
    private readonly check: () => Promise<boolean>,
    private readonly active: () => boolean,
    options: Partial<PollerOptions> = {}
  ) {
    this.options = { ...DEFAULTS, ...options };
    this.delay = this.options.minMs;
  }

  start(): void {
    this.running = true;
    this.schedule(0);
  }

  stop(): void {
    this.running = false;
    if (this.timer !== null) {
      window.clearTimeout(this.timer);
      this.timer = null;
    }
  }

  /** Poll now and go back to the fastest rate (a user action, or the panel shown). */
  wake(): void {
    this.delay = this.options.minMs;
    this.schedule(0);
  }

  private schedule(ms: number): void {
    if (!this.running) {
      return;
    }
    if (this.timer !== null) {
      window.clearTimeout(this.timer);
    }
    this.timer = window.setTimeout(() => void this.tick(), ms);
  }

  private async tick(): Promise<void> {
    this.timer = null;
    const { minMs, maxMs, errorMaxMs, factor } = this.options;
    if (!this.active()) {
      this.schedule(maxMs);
      return;
    }
    try {
      const changed = await this.check();
      this.delay = changed ? minMs : Math.min(maxMs, this.delay * factor);
    } catch {
      this.delay = Math.min(errorMaxMs, Math.max(this.delay * 2, 4000));
    }
    if (this.timer === null) {
      this.schedule(this.delay);
    }
  }
}
