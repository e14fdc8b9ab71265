// A report directory written atomically. A run writes into a staging directory beside the report
// (`DIR.partial-PID`) and, once its verdict is known, swaps it into place: the report directory only ever
// holds the files of one finished run, so a killed run, or a second run into the same directory, can never
// leave a page claiming a verdict beside another run's files. A lock file (`DIR.lock`, holding the writer's
// pid) refuses a second writer while the first is alive.
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { ReportData } from '../../properties/report-data.ts';
import { checkOutputDir, UsageError } from '../common.ts';

/** The files a report directory holds: a directory with anything else is not overwritten. */
function isReportFile(name: string): boolean {
  return name === 'report.json' || name === 'index.html' || /^cex-[A-Za-z0-9-]*\.jsonl$/.test(name);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class ReportDir {
  private committed = false;

  private constructor(
    /** Where the report will be. */
    readonly final: string,
    /** Where the run writes its files until the report is committed. */
    readonly staging: string,
    private readonly lock: string,
  ) {}

  /** Takes the lock of `path` and opens a staging directory; bad input (exit 2) if it cannot be written or another run holds it. */
  static open(path: string, flag = '--report'): ReportDir {
    const final = ReportDir.check(path, flag);
    const lock = `${final}.lock`;
    ReportDir.acquire(lock, flag, path);
    const staging = `${final}.partial-${process.pid}`;
    const dir = new ReportDir(final, staging, lock);
    process.once('exit', () => dir.release());
    try {
      rmSync(staging, { recursive: true, force: true });
      mkdirSync(staging);
    } catch (err) {
      dir.release();
      throw new UsageError(`${flag} ${path}: cannot create ${basename(staging)} beside it (${(err as Error).message.split('\n')[0]})`);
    }
    return dir;
  }

  /**
   * Checks, before any work starts, that a report can be written at `path`: its parent is writable, and it is
   * new, or a directory holding nothing but an earlier report. Returns the absolute path.
   */
  static check(path: string, flag = '--report'): string {
    const final = resolve(path);
    checkOutputDir(dirname(final), flag, path);
    // Permission bits are not the whole story (a read-only mount, /proc): create and remove a probe file.
    const probe = `${final}.probe-${process.pid}`;
    try {
      closeSync(openSync(probe, 'wx'));
      unlinkSync(probe);
    } catch (err) {
      throw new UsageError(`${flag} ${path}: cannot write beside it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    let st;
    try {
      st = statSync(final, { throwIfNoEntry: false });
    } catch (err) {
      throw new UsageError(`${flag} ${path}: cannot write into the directory (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    if (st && !st.isDirectory()) throw new UsageError(`${flag} ${path}: it is a file, not a directory`);
    if (st) {
      const foreign = readdirSync(final).filter((n) => !isReportFile(n));
      if (foreign.length) throw new UsageError(`${flag} ${path} holds files that are not a pdspec report (${foreign.slice(0, 3).join(', ')}${foreign.length > 3 ? ', …' : ''}): choose a new or empty directory`);
    }
    return final;
  }

  private static acquire(lock: string, flag: string, path: string): void {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(lock, 'wx');
        writeSync(fd, `${process.pid}\n`);
        closeSync(fd);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new UsageError(`${flag} ${path}: cannot take its lock ${basename(lock)} (${(err as Error).message.split('\n')[0]})`);
      }
      const holder = Number.parseInt(readFileSync(lock, 'utf8'), 10);
      if (Number.isInteger(holder) && holder !== process.pid && alive(holder)) {
        throw new UsageError(`${flag} ${path}: another pdspec run (pid ${holder}) is writing this report; wait for it, or choose another directory`);
      }
      unlinkSync(lock); // left by a run that died
    }
    throw new UsageError(`${flag} ${path}: cannot take its lock ${basename(lock)}`);
  }

  /** Writes the report into the staging directory and swaps it into place; returns the final paths. */
  async commit(data: ReportData): Promise<{ html: string; json: string }> {
    // The renderer (and its chart library) loads only when a report is written.
    const { writeReport } = await import('./render.ts');
    await writeReport(data, this.staging);
    if (existsSync(this.final)) {
      const old = `${this.final}.old-${process.pid}`;
      renameSync(this.final, old);
      renameSync(this.staging, this.final);
      rmSync(old, { recursive: true, force: true });
    } else {
      renameSync(this.staging, this.final);
    }
    this.committed = true;
    this.release();
    return { html: join(this.final, 'index.html'), json: join(this.final, 'report.json') };
  }

  /** Drops the staging directory (unless committed) and the lock, if it is still this run's. */
  release(): void {
    if (!this.committed) rmSync(this.staging, { recursive: true, force: true });
    try {
      if (Number.parseInt(readFileSync(this.lock, 'utf8'), 10) === process.pid) unlinkSync(this.lock);
    } catch {
      // already released
    }
  }
}
