// The demo panel: streams the demo job's results and paints each tile on the canvas as it arrives.
import { ReconnectBackoff } from '../backoff.js';
import { colorKey, isTile, paintFailed, paintTile, tilePosition, workerColor } from './demo.js';
import { readLines } from './ndjson.js';
import { strings } from './strings.js';

const LEGEND_MAX = 12;

export class DemoPanel {
  // elements: {canvas, empty, status, legend}; httpBase: '' or 'http://host:port'; headers: sent with every fetch
  // (the token: token.js authHeaders); labelOf(workerId) -> text or null.
  constructor({
    elements,
    httpBase = '',
    headers = {},
    labelOf = () => null,
    fetchImpl = (...args) => fetch(...args),
    backoff = new ReconnectBackoff({ initialMs: 2000 }),
  }) {
    this.el = elements;
    this.httpBase = httpBase;
    this.headers = headers;
    this.labelOf = labelOf;
    this.fetch = fetchImpl;
    this.ctx = elements.canvas.getContext('2d');
    this.demo = null; // server.demo
    this.job = null; // the JobRow painted
    this.controller = null; // aborts the running stream
    this.retryTimer = null;
    this.backoff = backoff; // waits between attempts to stream a job's results
    this.streamState = 'idle'; // idle | streaming | complete | error (retried) | gone
    this.known = false;
    this.resetTiles();
  }

  resetTiles() {
    this.tiles = 0;
    this.failed = 0;
    this.workers = new Map(); // colorKey -> {color, tiles, id, label}
    this.legendDirty = true;
  }

  // The coordinator's demo settings (server.demo), or null when it has none.
  setDemo(demo) {
    const same =
      demo && this.demo
        ? ['name', 'cols', 'rows', 'tile_width', 'tile_height', 'max_iter'].every(
            (field) => demo[field] === this.demo[field],
          )
        : !demo && !this.demo;
    if (same && this.known) return;
    this.known = true; // a snapshot said what the demo is (or that there is none)
    this.demo = demo ?? null;
    const { canvas } = this.el;
    if (this.demo) {
      canvas.width = this.demo.cols * this.demo.tile_width;
      canvas.height = this.demo.rows * this.demo.tile_height;
      canvas.style.aspectRatio = `${canvas.width} / ${canvas.height}`;
    }
    this.stop();
    this.job = null;
    this.clear();
    this.render();
  }

  // Called on every state change with the demo job (model.demoJob) or null.
  show(job) {
    if (!this.demo) return;
    if (job?.id !== this.job?.id) {
      this.stop();
      this.job = job;
      this.clear();
      if (job) this.start();
    } else {
      this.job = job;
    }
    this.render();
  }

  // After the live feed reconnects: a stream that broke is restarted at once.
  reconnected() {
    if (this.job && (this.streamState === 'error' || this.retryTimer !== null)) this.restart();
  }

  // The language changed: the notes, and the legend with the labels of the workers still connected.
  relabel() {
    for (const worker of this.workers.values())
      worker.label = this.labelOf(worker.id) ?? worker.label;
    this.legendDirty = true;
    this.render();
  }

  stop() {
    this.controller?.abort();
    this.controller = null;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.streamState = 'idle';
  }

  clear() {
    this.resetTiles();
    this.ctx.clearRect(0, 0, this.el.canvas.width, this.el.canvas.height);
  }

  restart() {
    this.stop();
    this.clear();
    this.start();
    this.render();
  }

  async start() {
    const controller = new AbortController();
    this.controller = controller;
    this.streamState = 'streaming';
    const jobId = this.job.id;
    try {
      const response = await this.fetch(`${this.httpBase}/api/jobs/${jobId}/results?follow=true`, {
        signal: controller.signal,
        headers: { ...this.headers, Accept: 'application/x-ndjson' },
      });
      if (!response.ok)
        throw Object.assign(new Error(`HTTP ${response.status}`), { status: response.status });
      this.backoff.connected(Date.now());
      await readLines(response.body, (line) => {
        if (controller.signal.aborted) return;
        let outcome;
        try {
          outcome = JSON.parse(line);
        } catch {
          console.warn(`demo: skipped a line that is not JSON: ${line.slice(0, 80)}`);
          return;
        }
        this.paint(outcome, jobId);
      });
      if (controller.signal.aborted) return;
      // The stream ends when the job does; ending before, it was cut (the coordinator stopped, say).
      if (this.job.state === 'running' && this.tiles + this.failed < this.job.total)
        throw new Error('stream ended early');
      this.streamState = 'complete';
    } catch (err) {
      if (controller.signal.aborted) return;
      console.warn(`demo: results of job ${jobId}: ${err.message}`);
      // A job that is gone (404) will not come back; anything else is retried.
      this.streamState = err.status === 404 ? 'gone' : 'error';
      if (this.streamState === 'error') {
        this.retryTimer = setTimeout(() => this.restart(), this.backoff.disconnected(Date.now()));
      }
    }
    this.render();
  }

  paint(outcome, jobId) {
    if (outcome.job_id !== jobId || !Number.isInteger(outcome.index)) return;
    const { tile_width: width, tile_height: height, max_iter: maxIter } = this.demo;
    const { x, y } = tilePosition(outcome.index, this.demo);
    if (outcome.status === 'done' && isTile(outcome.result)) {
      const key = colorKey(outcome);
      let worker = this.workers.get(key);
      if (!worker) {
        worker = {
          color: workerColor(key),
          tiles: 0,
          id: outcome.worker_id,
          label: this.labelOf(outcome.worker_id),
        };
        this.workers.set(key, worker);
      }
      worker.tiles += 1;
      const { result } = outcome;
      const image = this.ctx.createImageData(result.width, result.height);
      paintTile(image.data, result.counts, maxIter, worker.color.rgb);
      this.ctx.putImageData(image, x, y);
      this.tiles += 1;
    } else {
      const image = this.ctx.createImageData(width, height);
      paintFailed(image.data, width, height);
      this.ctx.putImageData(image, x, y);
      this.failed += 1;
    }
    this.legendDirty = true;
    this.scheduleRender();
  }

  scheduleRender() {
    if (this.renderPending) return;
    this.renderPending = true;
    requestAnimationFrame(() => {
      this.renderPending = false;
      this.render();
    });
  }

  render() {
    const { canvas, empty, status } = this.el;
    const data = {
      tiles: String(this.tiles),
      failedTiles: String(this.failed),
      jobId: this.job ? String(this.job.id) : '',
    };
    for (const [name, value] of Object.entries(data))
      if (canvas.dataset[name] !== value) canvas.dataset[name] = value;
    let note = '';
    if (this.known && !this.demo) note = strings.demoUnavailable;
    else if (this.known && !this.job) note = strings.demoNone;
    if (empty.textContent !== note) empty.textContent = note;
    empty.hidden = note === '';
    let text = '';
    if (this.job) {
      text = strings.demoJob(this.job.id, this.tiles, this.job.total);
      if (this.streamState === 'error') text = `${text} · ${strings.demoStreamError}`;
      if (this.streamState === 'gone') text = `${text} · ${strings.demoJobGone}`;
    }
    if (status.textContent !== text) status.textContent = text;
    if (this.legendDirty) this.renderLegend();
  }

  renderLegend() {
    this.legendDirty = false;
    const entries = [...this.workers.values()]
      .sort((a, b) => b.tiles - a.tiles)
      .slice(0, LEGEND_MAX);
    const items = entries.map(({ color, tiles, id, label }) => {
      const name = label ? `#${id} ${label}` : `#${id}`;
      const item = document.createElement('li');
      const swatch = document.createElement('span');
      swatch.className = 'swatch';
      swatch.style.background = color.css;
      const count = document.createElement('span');
      count.className = 'legend-count';
      count.textContent = String(tiles);
      const named = document.createElement('span');
      named.className = 'legend-name';
      named.textContent = name;
      item.title = strings.demoLegendTitle(name, tiles);
      item.append(swatch, count, named);
      return item;
    });
    this.el.legend.replaceChildren(...items);
  }
}
