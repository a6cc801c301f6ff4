// Every text of the worker page a volunteer reads, in English and Spanish: `es` has exactly the
// keys of `en`, and each function the same parameters (tests/js/page_strings.test.mjs checks).
// index.html marks its fixed texts with data-s="key"; page.js fills them in from here. The log
// stays in English, as the coordinator's console does: it is for whoever debugs the grid.

export const en = {
  title: (name) => `${name} · browsergrid worker`,
  titleUnnamed: 'browsergrid worker',
  languageGroup: 'Language',
  about: (name) =>
    `While this tab is open, it lends this computer's processor to ${name}, which hands out `
    + 'small tasks: the tab computes them and sends back the results. The work runs in the background, in Web '
    + 'Workers; nothing is installed and nothing on this computer is read. Press Pause, or close the tab, to '
    + 'stop at once.',
  unnamed: 'this browsergrid coordinator',
  states: {
    connecting: 'connecting',
    connected: 'connected',
    working: 'working',
    paused: 'paused',
    disconnected: 'disconnected',
  },
  pause: 'Pause',
  resume: 'Resume',
  running: (workers, percent) =>
    workers === 1
      ? `Computing with 1 Web Worker at ${percent}\u00a0% of a core.`
      : `Computing with ${workers} Web Workers, each at ${percent}\u00a0% of a core.`,
  pausedBecause: {
    user: 'Paused: nothing runs here, and the tasks this tab held went back to the grid.',
    hidden: 'Paused while this tab is hidden (your setting below).',
    battery: 'Paused while this computer runs on battery (your setting below).',
  },
  nowHeading: 'Now computing',
  slotName: (number) => `Worker ${number}`,
  slotComputing: (op, taskId) => `${op} (task ${taskId})`,
  slotResting: (op, taskId) => `resting (CPU share), then ${op} (task ${taskId})`,
  slotRestingIdle: 'resting (CPU share)',
  slotIdle: 'idle',
  slotPaused: 'paused',
  waiting: (count) =>
    count === 1 ? '1 more task waiting here' : `${count} more tasks waiting here`,
  givenHeading: 'What you have given',
  thisSession: 'This session',
  inTotal: 'In total',
  tasks: 'Tasks',
  computeTime: 'Compute time',
  since: (date) => `In total: every visit from this browser since ${date}.`,
  sinceNone: 'In total: every visit from this browser.',
  settingsHeading: 'Your settings',
  workersLabel: 'Web Workers (tasks at once)',
  workersHelp: (cores) =>
    `This computer has ${cores} logical processors; the default leaves one free.`,
  workersHelpUnknown: 'The default leaves one processor free.',
  shareLabel: 'CPU share of each worker',
  shareHelp:
    'Below 100 %, each worker rests after every task in proportion to how long it computed '
    + '(at 50 % it rests as long). A task that has started is not interrupted: a long task runs at full '
    + 'speed and its rest comes after it.',
  pauseHiddenLabel: 'Pause while this tab is hidden',
  pauseBatteryLabel: 'Pause when this computer runs on battery',
  remembered: 'These settings and the language are remembered in this browser.',
  notRemembered:
    'This browser does not let the page remember anything: these settings hold for this visit.',
  connectionHeading: 'Connection',
  stateLabel: 'State',
  serverLabel: 'Server',
  workerIdLabel: 'Worker id',
  lastResultLabel: 'Last result',
  lastDurationLabel: 'Last duration (ms)',
  logHeading: 'Log',
  noscript: 'This page needs JavaScript to work.',
};

export const es = {
  title: (name) => `${name} · trabajador de browsergrid`,
  titleUnnamed: 'trabajador de browsergrid',
  languageGroup: 'Idioma',
  about: (name) =>
    `Mientras esta pestaña esté abierta, presta el procesador de este equipo a ${name}, que `
    + 'reparte pequeñas tareas: la pestaña las calcula y devuelve los resultados. El trabajo corre en segundo '
    + 'plano, en Web Workers; no se instala nada y no se lee nada de este equipo. Pulsa Pausar, o cierra la '
    + 'pestaña, para pararlo al instante.',
  unnamed: 'este coordinador de browsergrid',
  states: {
    connecting: 'conectando',
    connected: 'conectado',
    working: 'calculando',
    paused: 'en pausa',
    disconnected: 'desconectado',
  },
  pause: 'Pausar',
  resume: 'Reanudar',
  running: (workers, percent) =>
    workers === 1
      ? `Calculando con 1 Web Worker al ${percent}\u00a0% de un núcleo.`
      : `Calculando con ${workers} Web Workers, cada uno al ${percent}\u00a0% de un núcleo.`,
  pausedBecause: {
    user: 'En pausa: aquí no corre nada, y las tareas que tenía esta pestaña han vuelto a la red.',
    hidden: 'En pausa mientras esta pestaña está oculta (según tu ajuste de abajo).',
    battery: 'En pausa mientras este equipo funciona con batería (según tu ajuste de abajo).',
  },
  nowHeading: 'Calculando ahora',
  slotName: (number) => `Trabajador ${number}`,
  slotComputing: (op, taskId) => `${op} (tarea ${taskId})`,
  slotResting: (op, taskId) => `descansando (cuota de CPU), luego ${op} (tarea ${taskId})`,
  slotRestingIdle: 'descansando (cuota de CPU)',
  slotIdle: 'libre',
  slotPaused: 'en pausa',
  waiting: (count) =>
    count === 1 ? '1 tarea más esperando aquí' : `${count} tareas más esperando aquí`,
  givenHeading: 'Lo que has aportado',
  thisSession: 'Esta sesión',
  inTotal: 'En total',
  tasks: 'Tareas',
  computeTime: 'Tiempo de cálculo',
  since: (date) => `En total: todas las visitas desde este navegador desde el ${date}.`,
  sinceNone: 'En total: todas las visitas desde este navegador.',
  settingsHeading: 'Tus ajustes',
  workersLabel: 'Web Workers (tareas a la vez)',
  workersHelp: (cores) =>
    `Este ordenador tiene ${cores} procesadores lógicos; por defecto se deja uno libre.`,
  workersHelpUnknown: 'Por defecto se deja un procesador libre.',
  shareLabel: 'Cuota de CPU de cada trabajador',
  shareHelp:
    'Por debajo del 100 %, cada trabajador descansa tras cada tarea en proporción a lo que calculó '
    + '(al 50 % descansa otro tanto). Una tarea ya empezada no se interrumpe: una tarea larga corre a toda '
    + 'velocidad y su descanso viene después.',
  pauseHiddenLabel: 'Pausar mientras esta pestaña está oculta',
  pauseBatteryLabel: 'Pausar cuando este equipo funciona con batería',
  remembered: 'Estos ajustes y el idioma se recuerdan en este navegador.',
  notRemembered:
    'Este navegador no deja que la página recuerde nada: estos ajustes valen para esta visita.',
  connectionHeading: 'Conexión',
  stateLabel: 'Estado',
  serverLabel: 'Servidor',
  workerIdLabel: 'Id de trabajador',
  lastResultLabel: 'Último resultado',
  lastDurationLabel: 'Última duración (ms)',
  logHeading: 'Registro (técnico, en inglés)',
  noscript: 'Esta página necesita JavaScript.',
};

export const STRINGS = { en, es };
