/**
 * The only place the sidebar talks to the server: typed calls to /llmops-nb/api/.
 * Errors surface as one-line messages (the server's own "message" field).
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export interface Page<T> {
  items: T[];
  total: number;
  limit: number;
  offset: number;
}

export interface Paging {
  limit?: number;
  offset?: number;
}

export interface Project {
  name: string;
  created_at: string;
}

/** `current` is the project a notebook last chose (`%llmops project`), stamped when. */
export interface FollowedProject {
  current: string;
  current_updated?: number | null;
}

export interface ProjectPage extends Page<Project>, FollowedProject {}

export interface Changes extends FollowedProject {
  project: string;
  marker: string;
}

export interface PromptSummary {
  name: string;
  latest: number | null;
  aliases: string;
  updated: string;
}

export interface PromptVersion {
  id: number;
  version: number;
  hash: string;
  template: string;
  model: string | null;
  parameters: Record<string, unknown>;
  message: string | null;
  author: string;
  created_at: string;
  notebook_path: string | null;
}

export interface PromptDiff {
  name: string;
  from: number | null;
  to: number;
  diff: string;
}

export interface AliasEvent {
  alias: string;
  action: string;
  from_version: number | null;
  to_version: number;
  author: string;
  time: string;
}

export interface Aliases {
  name: string;
  aliases: Record<string, number>;
  log: Page<AliasEvent>;
}

export interface EvalRun {
  id: number;
  name: string;
  status: string;
  n_cells: number;
  author: string;
  created_at: string;
  finished_at: string | null;
}

/** A regression mark of one cell and scorer against the baseline run. */
export interface EvalFlag {
  flag?: string;
  baseline?: number | null;
  current?: number | null;
  delta?: number | null;
  ci_low?: number | null;
  ci_high?: number | null;
  p_value?: number | null;
}

/** One prompt x model cell of the eval view (the numbers the notebook panel shows). */
export interface EvalCell {
  prompt: string;
  model: string;
  n: number;
  errors: number;
  scores: Record<string, number | null>;
  pass_rate: number | null;
  latency_p50_ms: number | null;
  latency_p95_ms: number | null;
  cached_latency_p50_ms?: number | null;
  input_tokens?: number | null;
  output_tokens?: number | null;
  cost: number | null;
  cached?: number | null;
  flags?: Record<string, EvalFlag>;
}

/** GET evals/<id>: the eval view, shared with the notebook panel and the report. */
export interface EvalView {
  id: number;
  name: string;
  status: string;
  project?: string;
  n_cells: number;
  done?: number;
  created?: string | null;
  baseline_id?: number | null;
  baseline_name?: string | null;
  comparison_error?: string | null;
  prompts?: string[];
  models?: string[];
  scorers?: string[];
  thresholds?: Record<string, unknown>;
  cells: EvalCell[];
}

export interface EvalResult {
  id: number;
  prompt_ref: string;
  model_label: string;
  row_index: number;
  inputs: Record<string, unknown>;
  expected: string | null;
  output: string | null;
  error: string | null;
  scores: Record<string, unknown>;
  latency_ms: number | null;
  trace_id: string | null;
}

export interface TraceSummary {
  id: string;
  name: string;
  status: string;
  error: string | null;
  start_ms: number;
  duration_ms: number | null;
  n_spans: number;
  input_tokens: number;
  output_tokens: number;
  cost: number;
  notebook_path: string | null;
}

export interface SpanNode {
  id: string;
  parent_id: string | null;
  name: string;
  kind: string;
  status: string;
  error: string | null;
  offset_ms: number;
  duration_ms: number;
  inputs: unknown;
  outputs: unknown;
  attributes: Record<string, unknown>;
  children: SpanNode[];
}

/** One thumbs up/down on a trace, as `views.traces.trace_view` lists it. */
export interface Feedback {
  score: number;
  comment: string | null;
  author?: string;
  span_id?: string | null;
  created_at?: string | null;
}

export interface TraceDetail extends TraceSummary {
  spans: SpanNode[];
  feedback?: Feedback[];
}

export interface TraceFilters extends Paging {
  name_contains?: string;
  status?: string;
  since?: string;
  until?: string;
  /** The previous page's next_cursor: the page after it, read from the index (no OFFSET). */
  after?: string;
}

/** A page of traces, with the cursor of the page after it (absent on the last page). */
export interface TracePage extends Page<TraceSummary> {
  next_cursor?: string;
}

export interface VectorIndex {
  name: string;
  version: number;
  n_items: number;
  embed_model: string;
  dim: number;
  space: string;
  m: number;
  ef: number;
  versions: number;
  author: string;
  created_at: string;
}

export interface FinetuneJob {
  id: number;
  name: string;
  base: string;
  method: string;
  backend: string;
  status: string;
  params: Record<string, unknown>;
  error: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
}

/** One job as `views.finetunes.finetune_view`: what the notebook's panel shows. */
export interface FinetuneView {
  id: number;
  name: string;
  status: string;
  base: string;
  method: string;
  backend: string;
  model: string;
  error: string | null;
  step: number | null;
  total_steps: number | null;
  loss: number | null;
  eval_loss: number | null;
  train: [number, number][];
  eval: [number, number][];
  params: Record<string, unknown>;
}

export interface RegisteredModel {
  id: number;
  name: string;
  version: number;
  base: string;
  backend: string | null;
  job_id: number | null;
  metrics: Record<string, unknown>;
  created_at: string;
}

type Query = Record<string, string | number | undefined | null>;

function withQuery(path: string, query: Query = {}): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== '') {
      params.set(key, String(value));
    }
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

/** Call the server extension; reject with its message on a non-2xx reply. */
export async function requestAPI<T>(
  endPoint: string,
  init: RequestInit = {}
): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'llmops-nb', 'api', endPoint);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ServerConnection.NetworkError(error as TypeError);
  }
  const text = await response.text();
  let data: any = null;
  if (text.length > 0) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { message: text };
    }
  }
  if (!response.ok) {
    throw new ServerConnection.ResponseError(
      response,
      (data && data.message) || response.statusText
    );
  }
  return data as T;
}

const enc = encodeURIComponent;

export const api = {
  projects: (): Promise<ProjectPage> =>
    requestAPI(withQuery('projects', { limit: 500 })),
  changes: (project: string): Promise<Changes> =>
    requestAPI(withQuery('changes', { project })),

  prompts: (project: string, page: Paging = {}): Promise<Page<PromptSummary>> =>
    requestAPI(withQuery('prompts', { project, ...page })),
  promptVersions: (
    project: string,
    name: string,
    page: Paging = {}
  ): Promise<Page<PromptVersion>> =>
    requestAPI(withQuery(`prompts/${enc(name)}/versions`, { project, ...page })),
  promptDiff: (
    project: string,
    name: string,
    a?: number,
    b?: number
  ): Promise<PromptDiff> =>
    requestAPI(withQuery(`prompts/${enc(name)}/diff`, { project, a, b })),
  promptAliases: (project: string, name: string): Promise<Aliases> =>
    requestAPI(withQuery(`prompts/${enc(name)}/aliases`, { project, limit: 20 })),
  moveAlias: (
    project: string,
    name: string,
    alias: string,
    version: number | null
  ): Promise<{ alias: string; from: number | null; to: number }> =>
    requestAPI(withQuery(`prompts/${enc(name)}/aliases`, { project }), {
      method: 'POST',
      body: JSON.stringify(
        version === null ? { alias, rollback: true } : { alias, version }
      )
    }),

  evals: (project: string, page: Paging = {}): Promise<Page<EvalRun>> =>
    requestAPI(withQuery('evals', { project, ...page })),
  evalDetail: async (runId: number): Promise<EvalView> =>
    requestAPI(`evals/${runId}`),
  evalResults: (
    runId: number,
    prompt: string,
    model: string,
    page: Paging = {}
  ): Promise<Page<EvalResult>> =>
    requestAPI(withQuery(`evals/${runId}/results`, { prompt, model, ...page })),

  traces: (project: string, filters: TraceFilters = {}): Promise<TracePage> =>
    requestAPI(withQuery('traces', { project, ...filters })),
  trace: (traceId: string): Promise<TraceDetail> =>
    requestAPI(`traces/${enc(traceId)}`),
  feedback: (traceId: string, score: 1 | -1, comment?: string): Promise<unknown> =>
    requestAPI(`traces/${enc(traceId)}/feedback`, {
      method: 'POST',
      body: JSON.stringify({ score, comment: comment || null })
    }),

  finetunes: (project: string, page: Paging = {}): Promise<Page<FinetuneJob>> =>
    requestAPI(withQuery('finetunes', { project, ...page })),
  finetune: (jobId: number): Promise<FinetuneView> =>
    requestAPI(`finetunes/${jobId}`),
  models: (project: string, page: Paging = {}): Promise<Page<RegisteredModel>> =>
    requestAPI(withQuery('models', { project, ...page })),
  indexes: (project: string, page: Paging = {}): Promise<Page<VectorIndex>> =>
    requestAPI(withQuery('indexes', { project, ...page }))
};

