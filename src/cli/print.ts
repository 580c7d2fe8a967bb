// How a command prints its result on stdout: text as it is, anything else as indented JSON.

export const print = (value: unknown): void => void process.stdout.write(typeof value === 'string' ? `${value}\n` : `${JSON.stringify(value, null, 2)}\n`);

/** A yes/no question on the terminal (on stderr, so stdout stays the result); anything but y or yes is no. */
export async function confirm(question: string): Promise<boolean> {
  const { createInterface } = await import('node:readline/promises');
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^\s*y(es)?\s*$/i.test(await rl.question(question));
  } finally {
    rl.close();
  }
}
