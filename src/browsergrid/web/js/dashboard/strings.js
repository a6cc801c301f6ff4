// Every user-visible text of the dashboard, in one object: a translation is another object with the same keys.
// dashboard.html marks its fixed texts with data-s="key"; main.js fills them in from here.

export const en = {
  locale: 'en',

  // page
  title: 'browsergrid dashboard',
  noscript: 'This page needs JavaScript to work.',
  version: (v) => `v${v}`,
  uptime: (age) => `up ${age}`,
  connConnecting: 'connecting…',
  connLive: 'live',
  connReconnecting: 'reconnecting…',
  connRetryIn: (seconds) => `next attempt in ${seconds} s`,
  storeProblem: (why) => `Store problem: ${why}. New work is refused until it recovers.`,
  feedNeedsToken: (hasToken) => (hasToken
    ? 'The ?token= in this address is not this coordinator\'s dashboard or admin token.'
    : 'This coordinator asks for a token: open this page as /dashboard?token=TOKEN (the dashboard or admin token).'),

  // totals
  totalsHeading: 'Totals',
  totalWorkers: 'workers',
  totalBusy: 'busy',
  totalRate: 'tasks/s now',
  totalQueued: 'queued',
  totalLeased: 'leased',
  totalDone: 'done',
  totalFailed: 'failed',
  totalClients: 'clients',
  totalViewers: 'viewers',

  // coordinators (a grid of coordinators sharing one Redis: serve --redis)
  coordinatorsHeading: 'Coordinators',
  coordinatorsCount: (n) => (n === 1 ? '1 live, sharing one Redis' : `${n} live, sharing one Redis`),
  coordinatorsNone: 'No coordinator is live.',
  coordinatorId: 'Coordinator',
  coordinatorUrl: 'Address',
  coordinatorWorkers: 'Workers',
  coordinatorBusy: 'Busy',
  coordinatorRate: 'Tasks/s',
  coordinatorDone: 'Done',
  coordinatorFailed: 'Failed',
  coordinatorUp: 'Up',
  coordinatorVersion: 'Version',
  coordinatorThis: (id) => `${id} (this one)`,
  coordinatorOpen: (url) => `Open the dashboard of ${url}`,
  workerCoordinator: 'Coordinator',
  workersUnlisted: (n) => `${n} more on other coordinators, not listed (each shares the rows of its first 250)`,

  // throughput chart
  chartHeading: 'Throughput, last 15 minutes (tasks/s)',
  chartDone: 'done',
  chartFailed: 'failed',
  chartUnavailable: 'chart unavailable: run npm ci',

  // demo
  demoHeading: 'Demo image',
  demoButton: 'Run demo',
  demoSubmitting: 'Submitting…',
  demoSubmitted: (job, count) => `Job ${job} submitted: ${count} tiles.`,
  demoFailed: (detail) => `Run demo failed: ${detail}`,
  demoUnreachable: 'Run demo failed: the coordinator cannot be reached.',
  demoHttp: (status) => `HTTP ${status}`,
  demoNeedsToken: (hasToken) => `Running the demo needs the admin token${hasToken ? ', and the ?token= of this page is not it' : ''}: `
    + 'open this page as /dashboard?token=ADMIN_TOKEN (on the coordinator\'s machine, browsergrid token prints the link).',
  demoNone: 'No demo yet: press Run demo.',
  demoUnavailable: 'This coordinator offers no demo.',
  demoJob: (job, tiles, total) => `Job ${job}: ${tiles} of ${total} tiles`,
  demoStreamError: 'Lost the result stream; retrying.',
  demoJobGone: 'its results are no longer kept.',
  demoCanvasLabel: 'Mandelbrot set computed tile by tile; each tile is tinted by the worker that computed it.',
  demoLegendHeading: 'Workers in this image',
  demoLegendTitle: (name, tiles) => `${name}: ${tiles} tiles`,

  // jobs
  jobsHeading: 'Jobs',
  jobId: 'Job',
  jobName: 'Name',
  jobOp: 'Op',
  jobState: 'State',
  jobProgress: 'Progress',
  jobDoneTotal: 'Done / total',
  jobFailed: 'Failed',
  jobRate: 'Tasks/s',
  jobEta: 'ETA',
  jobStates: { running: 'running', finished: 'finished', cancelled: 'cancelled' },
  jobsNone: 'No jobs yet.',
  progressLabel: (done, total) => `${done} of ${total} done`,

  // workers
  workersHeading: 'Connected workers',
  workersFilter: 'Filter',
  workersFilterPlaceholder: 'id, browser, OS, address, state…',
  workerId: 'Id',
  workerAgent: 'Browser / OS',
  workerAddress: 'Address',
  workerSince: 'Connected',
  workerState: 'State',
  workerSlots: 'Tasks / slots',
  workerDone: 'Done',
  workerFailures: 'Failures',
  workerMean: 'Mean ms',
  workerSpeed: 'Welcome ms',
  workerStates: { idle: 'idle', busy: 'busy', new: 'new', quarantined: 'quarantined' },
  workersNone: 'No workers connected.',
  workersNoMatch: 'No worker matches the filter.',
  summaryEntry: (count, label) => `${count} × ${label}`,
  summaryMore: (groups) => `and ${groups} more`,
  summaryNone: 'no workers',
  kindExercise: 'classroom page',
  kindPython: 'Python',
  unknownAgent: 'unknown agent',
  agentOn: (browser, os) => `${browser} on ${os}`,

  // pagination
  pagePrev: '‹ Previous',
  pageNext: 'Next ›',
  pageRange: (first, last, total) => `${first}–${last} of ${total}`,
  pageEmpty: '0 of 0',
  workersPages: 'Pages of connected workers',
  historyPages: 'Pages of worker history',

  // results and events
  resultsHeading: 'Latest results',
  resultsNone: 'No results yet.',
  resultLine: (task, job, op, worker, ms) =>
    `task ${task}${job === null ? ' (welcome)' : ` job ${job}`} · ${op} · worker #${worker} · ${ms} ms`,
  eventsHeading: 'Connects and disconnects',
  eventsNone: 'No connects or disconnects yet.',
  eventsDropped: (n) => `${n} more not listed (too many at once)`,
  eventKinds: { connected: 'connected', disconnected: 'disconnected' },

  // history
  historyHeading: 'Worker history',
  historyKey: 'Key',
  historyLabel: 'Browser / OS',
  historyFirst: 'First seen',
  historyLast: 'Last seen',
  historyDone: 'Done',
  historyFailures: 'Failures',
  historyMean: 'Mean ms',
  historyConnected: 'Connected',
  yes: 'yes',
  no: 'no',
  historyNone: 'No worker history yet.',

  // numbers and times
  none: '—',
  ago: (age) => `${age} ago`,
  justNow: 'just now',
  seconds: (n) => `${n} s`,
  minutes: (n) => `${n} min`,
  hoursMinutes: (h, m) => `${h} h ${String(m).padStart(2, '0')} min`,
  daysHours: (d, h) => `${d} d ${h} h`,
};

export const strings = en;
