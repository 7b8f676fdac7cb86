/** The benchmark scripts' command line: `--name value` options and bare `--flag`s (no dependency). */
export function cliArgs(argv = process.argv.slice(2)) {
  return {
    args: argv,
    /** The value after `name`, or `def` when `name` is absent. */
    opt: (name, def) => {
      const i = argv.indexOf(name);
      return i >= 0 ? argv[i + 1] : def;
    },
    /** Whether the bare flag `name` was given. */
    flag: (name) => argv.includes(name),
  };
}
