/** The operator's web console (/console): its routes and what they need. */
export { CONSOLE_DEFAULT_LIMITS, consoleRoutes, type ConsoleDeps } from './routes.ts';
