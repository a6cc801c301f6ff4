// Every user-visible text of the dashboard: one object per language, each with the same keys (a function takes
// the same parameters in each). dashboard.html marks its fixed texts with data-s="key"; main.js fills them in
// from here, and again whenever the header's language switch changes `strings` (setLanguage).

export const en = {
  locale: 'en', // for Intl: how format.js writes numbers, dates and times

  // language switch (each language named in itself, whatever the page's language)
  languageLabel: 'Language',
  languageNames: { en: 'English', es: 'Español' },

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
  feedNeedsToken: (hasToken) =>
    hasToken
      ? "The ?token= in this address is not this coordinator's dashboard or admin token."
      : 'This coordinator asks for a token: open this page as /dashboard?token=TOKEN (the dashboard or admin token).',

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
  coordinatorsCount: (n) =>
    n === 1 ? '1 live, sharing one Redis' : `${n} live, sharing one Redis`,
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
  workersUnlisted: (n) =>
    `${n} more on other coordinators, not listed (each shares the rows of its first 250)`,

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
  demoNeedsToken: (hasToken) =>
    `Running the demo needs the admin token${hasToken ? ', and the ?token= of this page is not it' : ''}: `
    + "open this page as /dashboard?token=ADMIN_TOKEN (on the coordinator's machine, browsergrid token prints the link).",
  demoNone: 'No demo yet: press Run demo.',
  demoUnavailable: 'This coordinator offers no demo.',
  demoJob: (job, tiles, total) => `Job ${job}: ${tiles} of ${total} tiles`,
  demoStreamError: 'Lost the result stream; retrying.',
  demoJobGone: 'its results are no longer kept.',
  demoCanvasLabel:
    'Mandelbrot set computed tile by tile; each tile is tinted by the worker that computed it.',
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

export const es = {
  locale: 'es',

  languageLabel: 'Idioma',
  languageNames: { en: 'English', es: 'Español' },

  // page
  title: 'panel de browsergrid',
  noscript: 'Esta página necesita JavaScript para funcionar.',
  version: (v) => `v${v}`,
  uptime: (age) => `activo desde hace ${age}`,
  connConnecting: 'conectando…',
  connLive: 'en vivo',
  connReconnecting: 'reconectando…',
  connRetryIn: (seconds) => `próximo intento en ${seconds} s`,
  storeProblem: (why) =>
    `Problema con el almacenamiento: ${why}. No se acepta trabajo nuevo hasta que se recupere.`,
  feedNeedsToken: (hasToken) =>
    hasToken
      ? 'El ?token= de esta dirección no es el token del panel ni el de administración de este coordinador.'
      : 'Este coordinador pide un token: abra esta página como /dashboard?token=TOKEN (el token del panel o el de administración).',

  // totals
  totalsHeading: 'Totales',
  totalWorkers: 'trabajadores',
  totalBusy: 'ocupados',
  totalRate: 'tareas/s ahora',
  totalQueued: 'en cola',
  totalLeased: 'asignadas',
  totalDone: 'hechas',
  totalFailed: 'fallidas',
  totalClients: 'clientes',
  totalViewers: 'observadores',

  // coordinators (a grid of coordinators sharing one Redis: serve --redis)
  coordinatorsHeading: 'Coordinadores',
  coordinatorsCount: (n) =>
    n === 1 ? '1 activo, con un Redis compartido' : `${n} activos, con un Redis compartido`,
  coordinatorsNone: 'No hay ningún coordinador activo.',
  coordinatorId: 'Coordinador',
  coordinatorUrl: 'Dirección',
  coordinatorWorkers: 'Trabajadores',
  coordinatorBusy: 'Ocupados',
  coordinatorRate: 'Tareas/s',
  coordinatorDone: 'Hechas',
  coordinatorFailed: 'Fallidas',
  coordinatorUp: 'Activo',
  coordinatorVersion: 'Versión',
  coordinatorThis: (id) => `${id} (este)`,
  coordinatorOpen: (url) => `Abrir el panel de ${url}`,
  workerCoordinator: 'Coordinador',
  workersUnlisted: (n) =>
    `${n} más en otros coordinadores, sin listar (cada uno comparte las filas de sus primeros 250)`,

  // throughput chart
  chartHeading: 'Rendimiento, últimos 15 minutos (tareas/s)',
  chartDone: 'hechas',
  chartFailed: 'fallidas',
  chartUnavailable: 'gráfico no disponible: ejecute npm ci',

  // demo
  demoHeading: 'Imagen de demostración',
  demoButton: 'Ejecutar demo',
  demoSubmitting: 'Enviando…',
  demoSubmitted: (job, count) => `Trabajo ${job} enviado: ${count} teselas.`,
  demoFailed: (detail) => `No se pudo ejecutar la demo: ${detail}`,
  demoUnreachable: 'No se pudo ejecutar la demo: no hay conexión con el coordinador.',
  demoHttp: (status) => `HTTP ${status}`,
  demoNeedsToken: (hasToken) =>
    `Para ejecutar la demo hace falta el token de administración${hasToken ? ', y el ?token= de esta página no lo es' : ''}: `
    + 'abra esta página como /dashboard?token=ADMIN_TOKEN (en la máquina del coordinador, browsergrid token muestra el enlace).',
  demoNone: 'Todavía no hay demo: haga clic en Ejecutar demo.',
  demoUnavailable: 'Este coordinador no ofrece demo.',
  demoJob: (job, tiles, total) => `Trabajo ${job}: ${tiles} de ${total} teselas`,
  demoStreamError: 'Se perdió el flujo de resultados; reintentando.',
  demoJobGone: 'sus resultados ya no se conservan.',
  demoCanvasLabel:
    'Conjunto de Mandelbrot calculado tesela a tesela; cada tesela lleva el color del trabajador que la calculó.',
  demoLegendHeading: 'Trabajadores en esta imagen',
  demoLegendTitle: (name, tiles) => `${name}: ${tiles} teselas`,

  // jobs
  jobsHeading: 'Trabajos',
  jobId: 'N.º',
  jobName: 'Nombre',
  jobOp: 'Op.',
  jobState: 'Estado',
  jobProgress: 'Progreso',
  jobDoneTotal: 'Hechas / total',
  jobFailed: 'Fallidas',
  jobRate: 'Tareas/s',
  jobEta: 'Restante',
  jobStates: { running: 'en curso', finished: 'terminado', cancelled: 'cancelado' },
  jobsNone: 'Todavía no hay trabajos.',
  progressLabel: (done, total) => `${done} de ${total} hechas`,

  // workers
  workersHeading: 'Trabajadores conectados',
  workersFilter: 'Filtrar',
  workersFilterPlaceholder: 'id, navegador, SO, dirección, estado…',
  workerId: 'Id',
  workerAgent: 'Navegador / SO',
  workerAddress: 'Dirección',
  workerSince: 'Conectado',
  workerState: 'Estado',
  workerSlots: 'Tareas / plazas',
  workerDone: 'Hechas',
  workerFailures: 'Fallos',
  workerMean: 'Media ms',
  workerSpeed: 'Bienvenida ms',
  workerStates: { idle: 'en espera', busy: 'ocupado', new: 'nuevo', quarantined: 'en cuarentena' },
  workersNone: 'No hay trabajadores conectados.',
  workersNoMatch: 'Ningún trabajador coincide con el filtro.',
  summaryEntry: (count, label) => `${count} × ${label}`,
  summaryMore: (groups) => `y ${groups} más`,
  summaryNone: 'ningún trabajador',
  kindExercise: 'página del aula',
  kindPython: 'Python',
  unknownAgent: 'agente desconocido',
  agentOn: (browser, os) => `${browser} en ${os}`,

  // pagination
  pagePrev: '‹ Anterior',
  pageNext: 'Siguiente ›',
  pageRange: (first, last, total) => `${first}–${last} de ${total}`,
  pageEmpty: '0 de 0',
  workersPages: 'Páginas de trabajadores conectados',
  historyPages: 'Páginas del historial de trabajadores',

  // results and events
  resultsHeading: 'Últimos resultados',
  resultsNone: 'Todavía no hay resultados.',
  resultLine: (task, job, op, worker, ms) =>
    `tarea ${task}${job === null ? ' (bienvenida)' : ` trabajo ${job}`} · ${op} · trabajador #${worker} · ${ms} ms`,
  eventsHeading: 'Conexiones y desconexiones',
  eventsNone: 'Todavía no hay conexiones ni desconexiones.',
  eventsDropped: (n) => `${n} más sin listar (demasiadas a la vez)`,
  eventKinds: { connected: 'conectado', disconnected: 'desconectado' },

  // history
  historyHeading: 'Historial de trabajadores',
  historyKey: 'Clave',
  historyLabel: 'Navegador / SO',
  historyFirst: 'Primera vez',
  historyLast: 'Última vez',
  historyDone: 'Hechas',
  historyFailures: 'Fallos',
  historyMean: 'Media ms',
  historyConnected: 'Conectado',
  yes: 'sí',
  no: 'no',
  historyNone: 'Todavía no hay historial de trabajadores.',

  // numbers and times
  none: '—',
  ago: (age) => `hace ${age}`,
  justNow: 'ahora mismo',
  seconds: (n) => `${n} s`,
  minutes: (n) => `${n} min`,
  hoursMinutes: (h, m) => `${h} h ${String(m).padStart(2, '0')} min`,
  daysHours: (d, h) => `${d} d ${h} h`,
};

export const translations = { en, es };

// The texts of the page's language: a live binding, so every module that imports `strings` reads the
// language chosen last. English until setLanguage says otherwise (and in Node tests).
export let strings = en;

// Switches `strings` to `lang` (a key of translations; anything else is English) and returns them. The page
// must then redraw what it wrote (main.js does).
export function setLanguage(lang) {
  strings = Object.hasOwn(translations, lang) ? translations[lang] : en;
  return strings;
}
