/** Root hooks: a process warning (deprecation, unhandled rejection, ...) fails the run. */
const warnings: Error[] = [];
process.on('warning', (w) => warnings.push(w));

export const mochaHooks = {
  afterEach(this: Mocha.Context): void {
    if (warnings.length > 0) {
      const w = warnings.splice(0);
      throw new Error(`process warning during the test: ${w.map((x) => `${x.name}: ${x.message}`).join('; ')}`);
    }
  },
};
