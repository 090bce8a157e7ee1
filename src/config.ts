/**
 * Configuration files: JSON whose string values may hold `{$NAME}`
 * placeholders, replaced from the environment when the file is loaded (as in
 * the Diarkis SDK). A placeholder that makes up a whole value turns into a
 * number or boolean when the variable holds one (`"port": "{$PORT}"` -> 8080).
 */
import fs from 'node:fs';
import { ConfigError } from './errors.js';

const PLACEHOLDER = /\{\$([A-Za-z_][A-Za-z0-9_]*)\}/g;

function expand(value: unknown, where: string, file: string, env: NodeJS.ProcessEnv): unknown {
  if (typeof value === 'string') {
    const whole = /^\{\$([A-Za-z_][A-Za-z0-9_]*)\}$/.exec(value);
    const lookup = (name: string) => {
      const v = env[name];
      if (v === undefined) throw new ConfigError(`${file}: ${where} uses {$${name}}, but ${name} is not set in the environment: set it, or change the file`);
      return v;
    };
    if (whole) {
      const v = lookup(whole[1]!);
      if (/^-?\d+(\.\d+)?$/.test(v)) return Number(v);
      if (v === 'true' || v === 'false') return v === 'true';
      return v;
    }
    return value.replace(PLACEHOLDER, (_m, name: string) => lookup(name));
  }
  if (Array.isArray(value)) return value.map((v, i) => expand(v, `${where}[${i}]`, file, env));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, expand(v, where ? `${where}.${k}` : k, file, env)]));
  }
  return value;
}

/**
 * loadConfig reads a JSON configuration file and replaces its `{$NAME}`
 * placeholders from env. Throws ConfigError (ERR_GRACEFUL_CONFIG) naming the
 * file and the place for a missing file, bad JSON or a missing variable.
 */
export function loadConfig<T = Record<string, unknown>>(file: string, env: NodeJS.ProcessEnv = process.env): T {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`${file}: cannot read the configuration file (${(err as { code?: string }).code ?? (err as Error).message})`, { cause: err });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${file}: not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new ConfigError(`${file}: the configuration must be a JSON object`);
  return expand(value, '', file, env) as T;
}
