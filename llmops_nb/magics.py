"""The magics: parse the line or cell, call a service, return what to display.

Thin on purpose: every feature lives in a service module (prompts, tracing...) so it
works the same from Python. Settings are `config=True` traits: `%config LLMOps.cache = False`.
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import MagicArgumentParser
from traitlets import Bool, Enum, Float, Int, Unicode, observe

from . import config
from ._version import __version__


def _parser(prog: str, description: str) -> MagicArgumentParser:
    return MagicArgumentParser(prog=prog, description=description, add_help=False)


def prompt_cell_parser() -> MagicArgumentParser:
    p = _parser("%%prompt", "Register a version of a prompt from the cell body.")
    p.add_argument("name", nargs="*", help="the prompt's name")
    p.add_argument("--model", help="litellm model id for this prompt")
    p.add_argument("--alias", help="point this alias at the resulting version")
    p.add_argument("--run", action="store_true", help="run it on sample or namespace variables")
    p.add_argument("--as", dest="var", help="bind the PromptVersion to this variable")
    p.add_argument("-m", "--message", help="a note for this version, like a commit message")
    return p


def eval_cell_parser() -> MagicArgumentParser:
    p = _parser("%%eval", "Run an eval grid (prompts x models x rows) from the cell's YAML.")
    p.add_argument("name", nargs="*", help="the run's name (then, in the line form, a spec path)")
    p.add_argument("--concurrency", type=int, help="concurrent model calls")
    p.add_argument("--baseline", help="'latest', a run id or a run name to compare with")
    p.add_argument("--resume", action="store_true", help="finish the latest run of NAME")
    p.add_argument("--out", help="also bind the EvalRun to this variable")
    p.add_argument("--no-cache", dest="no_cache", action="store_true", help="skip the cache")
    p.add_argument("--executor", choices=["local", "ray"], help="where it runs (LLMOps.executor)")
    return p


def finetune_line_parser() -> MagicArgumentParser:
    p = _parser("%finetune", "Fine-tune a local model on a DataFrame through a prompt.")
    p.add_argument("--base", required=True, help="the local model to tune, e.g. local/smollm2")
    p.add_argument("--data", required=True, help="the notebook variable with the training rows")
    p.add_argument("--prompt", required=True, help="the prompt version, e.g. support_reply@2")
    p.add_argument("--target", required=True, help="the column with the answers")
    p.add_argument("--name", help="the job's (and the registered model's) name")
    p.add_argument("--method", default="lora", choices=["lora", "qlora"])
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--r", type=int, default=16)
    p.add_argument("--alpha", type=int, default=16)
    p.add_argument("--eval-data", dest="eval_data", help="a notebook variable with held-out rows")
    p.add_argument("--backend", help="auto, unsloth or peft (default: LLMOps.finetune_backend)")
    p.add_argument("--batch-size", dest="batch_size", type=int)
    p.add_argument("--max-steps", dest="max_steps", type=int)
    p.add_argument("--max-length", dest="max_length", type=int)
    p.add_argument("--threads", type=int, help="torch CPU threads for the worker")
    p.add_argument("--out", help="also bind the FineTuneJob to this variable")
    return p


PROMPT_LINE_USAGE = """usage:
  %prompt list
  %prompt show NAME[@VERSION|@ALIAS]
  %prompt history NAME
  %prompt diff NAME V1 V2
  %prompt alias NAME ALIAS VERSION
  %prompt rollback NAME ALIAS"""

_PROMPT_LINE_ARITY = {"list": 0, "show": 1, "history": 1, "diff": 3, "alias": 3, "rollback": 2}


def split_line(line: str) -> list[str]:
    """A magic's line as shell-like words; unbalanced quotes are one UsageError line."""
    try:
        return shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"cannot parse the magic line {line.strip()!r}: {exc}") from None


def parse_prompt_line(line: str) -> tuple[str, list[str]]:
    """`%prompt SUBCOMMAND ARGS` -> (subcommand, args), or a UsageError."""
    words = split_line(line)
    if not words or words[0] not in _PROMPT_LINE_ARITY:
        raise UsageError(PROMPT_LINE_USAGE)
    sub, args = words[0], words[1:]
    if len(args) != _PROMPT_LINE_ARITY[sub]:
        raise UsageError(
            f"%prompt {sub} takes {_PROMPT_LINE_ARITY[sub]} argument(s)\n" + PROMPT_LINE_USAGE
        )
    return sub, args


def _version_number(text: str) -> int:
    value = text[1:] if text.startswith("v") else text
    if not value.isdigit():
        raise UsageError(f"expected a version number, got {text!r}")
    return int(value)


def banner() -> str:
    return (
        f"llmops_nb {__version__} · store {config.mask_url(config.store_url())} · "
        f"project {config.current_project()}"
    )


@magics_class
class LLMOps(Magics):
    """%%prompt, %prompt, %llmops, %trace; the settings behind %config LLMOps.*"""

    default_model = Unicode("", help="Model used when a call names none.").tag(config=True)
    concurrency = Int(8, help="Concurrent model calls in an eval grid.").tag(config=True)
    cache = Bool(True, help="Reuse stored responses for identical requests.").tag(config=True)
    display = Bool(True, help="Show panels for prompts, traces and evals.").tag(config=True)
    otlp_content = Bool(
        None,
        allow_none=True,
        help="Export prompts and replies over OTLP (None: follow "
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT).",
    ).tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        s = config.settings
        super().__init__(
            shell=shell,
            default_model=s.default_model,
            concurrency=s.concurrency,
            cache=s.cache,
            display=s.display,
            otlp_content=s.otlp_content,
            **kwargs,
        )

    @observe("default_model", "concurrency", "cache", "display", "otlp_content")
    def _sync_setting(self, change: dict[str, Any]) -> None:
        setattr(config.settings, change["name"], change["new"])

    # --- prompts ---------------------------------------------------------------------

    @line_cell_magic
    def prompt(self, line: str, cell: str | None = None) -> Any:
        """%%prompt NAME [--model M] [--alias A] [--run] [--as VAR] [-m MSG]; %prompt SUBCOMMAND"""
        if cell is None:
            sub, args = parse_prompt_line(line)
            return self._prompt_line(sub, args)
        args = prompt_cell_parser().parse_args(split_line(line))
        if not args.name:
            raise UsageError("%%prompt needs a name: %%prompt NAME [--model M] ...")
        args.name = " ".join(args.name)  # so "bad name" is reported as an invalid name
        return self._prompt_cell(args, cell)

    def _prompt_cell(self, args: argparse.Namespace, body: str) -> Any:
        from . import prompting as prompts

        result = prompts.register_body(
            args.name,
            body,
            model=args.model,
            message=args.message,
            run=args.run,
            namespace=self.shell.user_ns,
        )
        version = result.version
        if args.alias:
            print(prompts.set_alias(version.name, args.alias, version.version))
        self.shell.user_ns[args.var or _identifier(version.name)] = version
        print(result.describe())
        messages, response = None, None
        if args.run or version.sample:
            messages, response = self._try_run(version, force=args.run)
        if not config.settings.display:
            return None
        from .display import prompt_panel

        return prompt_panel(version, result.status, messages=messages, response=response)

    def _try_run(self, version: Any, force: bool) -> tuple[Any, Any]:
        """Render with namespace (then sample) variables; call the model when one is known."""
        from .prompting import run_variables

        values = run_variables(version.variables, version.sample, self.shell.user_ns)
        messages = version.render(values)  # checked before the version was stored
        model = version.model or config.settings.default_model
        if not model:
            if force:
                print(
                    "no model to run: give --model, a 'model' front-matter key, "
                    "or %config LLMOps.default_model = '...'"
                )
            return messages, None
        from .errors import LLMOpsError
        from .views.prompts import response_view

        try:
            c = version.run(values, model=model)
        except LLMOpsError as exc:
            return messages, {"model": model, "error": str(exc)}
        return messages, response_view(c)

    def _prompt_line(self, sub: str, args: list[str]) -> Any:
        from . import prompting as prompts

        if sub == "list":
            return prompts.prompts()
        if sub == "history":
            return prompts.prompt_history(args[0])
        if sub == "show":
            version = prompts.prompt(args[0])
            if not config.settings.display:
                return version
            from .display import prompt_panel

            return prompt_panel(version)
        if sub == "diff":
            a = prompts.prompt(f"{args[0]}@{_version_number(args[1])}")
            b = prompts.prompt(f"{args[0]}@{_version_number(args[2])}")
            from .widgets.prompt_panel import DiffView

            return DiffView(b.diff(a))
        if sub == "alias":
            print(prompts.set_alias(args[0], args[1], _version_number(args[2])))
        elif sub == "rollback":
            print(prompts.rollback(args[0], args[1]))
        return None

    # --- project, status ------------------------------------------------------------

    @line_magic
    def llmops(self, line: str) -> None:
        """%llmops (status) | %llmops project NAME | %llmops report [PATH] [--no-code]"""
        words = split_line(line)
        if words and words[0] == "report":
            self._report(words[1:])
        elif not words:
            print(banner())
        elif words[0] == "project" and len(words) == 2:
            config.set_project(words[1])
            print(f"project {words[1]}")
        elif words[0] == "project" and len(words) == 1:
            print(f"project {config.current_project()}")
        else:
            raise UsageError(
                "usage: %llmops | %llmops project NAME | %llmops report [PATH] [--notebook NB]"
            )

    def _report(self, words: list[str]) -> None:
        """Export the current notebook (as last saved) to PATH, default NB.report.html."""
        p = _parser("%llmops report", "Export this notebook to one self-contained HTML file.")
        p.add_argument("path", nargs="?", help="the HTML file to write")
        p.add_argument("--notebook", help="the notebook, when the kernel cannot tell")
        p.add_argument("--no-code", dest="no_code", action="store_true", help="hide code")
        args = p.parse_args(words)
        from .reporting import report

        written = report(args.notebook, args.path, no_code=args.no_code)
        print(f"report written: {written}")

    # --- traces -----------------------------------------------------------------------

    @line_magic
    def trace(self, line: str) -> Any:
        """%trace shows the last trace; %trace ID (or a unique prefix) a given one."""
        from . import tracing

        ref = line.strip()
        found = tracing.get_trace(ref) if ref else tracing.last_trace()
        if not config.settings.display:
            return found
        from .display import trace_panel

        return trace_panel(found)

    # --- evaluations -------------------------------------------------------------------

    @line_cell_magic
    def eval(self, line: str, cell: str | None = None) -> Any:
        """%%eval NAME [--concurrency N] [--baseline latest] [--resume] [--out VAR] [--no-cache]
        with the spec (YAML, a promptfoo config, or a path) as the body; %eval NAME SPEC.yaml."""
        args = eval_cell_parser().parse_args(split_line(line))
        words = list(args.name)
        if cell is None and len(words) == 2:
            words, cell = words[:1], words[1]
        if len(words) != 1 or not (cell or "").strip():
            raise UsageError(
                "usage: %%eval NAME [--concurrency N] [--baseline latest] ... "
                "with the spec in the cell body, or %eval NAME SPEC.yaml"
            )
        from .evals import run_cell

        run = run_cell(
            words[0],
            cell or "",
            namespace=self.shell.user_ns,
            concurrency=args.concurrency,
            baseline=args.baseline,
            resume=args.resume,
            cache=False if args.no_cache else None,
            executor=args.executor,
        )
        self.shell.user_ns["_"] = run
        if args.out:
            self.shell.user_ns[args.out] = run
        return run

    # --- where grids and fine-tunes run (API.md §11) ----------------------------------------

    executor = Enum(
        ("local", "ray"), "local", help="Where grids and fine-tunes run: local or ray."
    ).tag(config=True)
    ray_address = Unicode("", help="Ray cluster: '' (local), 'auto', HOST:PORT, ray://...").tag(
        config=True
    )
    ray_actors = Int(2, help="Ray actors (model replicas) per local model of a grid.").tag(
        config=True
    )
    ray_num_cpus = Float(1.0, help="CPUs per Ray actor or fine-tune task.").tag(config=True)
    ray_num_gpus = Float(0.0, help="GPUs per Ray actor or fine-tune task.").tag(config=True)

    @observe("executor", "ray_address", "ray_actors", "ray_num_cpus", "ray_num_gpus")
    def _sync_ray_setting(self, change: dict[str, Any]) -> None:
        setattr(config.settings, change["name"], change["new"])

    # --- fine-tunes ------------------------------------------------------------------------

    finetune_backend = Unicode(
        "auto", help="Fine-tune backend: auto (Unsloth on a GPU when installed), unsloth, peft."
    ).tag(config=True)
    finetune_batch_size = Int(8, help="Examples per fine-tune training step.").tag(config=True)

    redact_pii = Bool(False, help="Mask PII (emails, phones, cards...) in stored traces.").tag(
        config=True
    )

    @observe("redact_pii")
    def _sync_redact_pii(self, change: dict[str, Any]) -> None:
        config.settings.redact_pii = bool(change["new"])

    @observe("finetune_backend", "finetune_batch_size")
    def _sync_finetune_setting(self, change: dict[str, Any]) -> None:
        setattr(config.settings, change["name"], change["new"])

    fast_path = Bool(
        True, help="Call OpenAI-compatible endpoints directly, not through litellm."
    ).tag(config=True)

    @observe("fast_path")
    def _sync_fast_path(self, change: dict[str, Any]) -> None:
        config.settings.fast_path = change["new"]

    @line_magic
    def finetune(self, line: str) -> Any:
        """%finetune --base B --data VAR --prompt REF --target COL [--name N] [--method M]
        [--epochs E] [--lr X] [--r R] [--alpha A] [--eval-data VAR] [--max-steps S]
        [--max-length TOKENS]"""
        args = finetune_line_parser().parse_args(shlex.split(line))
        from .finetuning import finetune

        def variable(name: str | None) -> Any:
            if name is None:
                return None
            if name not in self.shell.user_ns:
                raise UsageError(f"%finetune: no variable {name!r} in the notebook")
            return self.shell.user_ns[name]

        job = finetune(
            args.base,
            variable(args.data),
            args.prompt,
            args.target,
            method=args.method,
            r=args.r,
            alpha=args.alpha,
            epochs=args.epochs,
            lr=args.lr,
            name=args.name,
            eval_data=variable(args.eval_data),
            backend=args.backend,
            batch_size=args.batch_size,
            max_steps=args.max_steps,
            threads=args.threads,
            **({} if args.max_length is None else {"max_length": args.max_length}),
        )
        self.shell.user_ns["_"] = job
        if args.out:
            self.shell.user_ns[args.out] = job
        return job


def _identifier(name: str) -> str:
    """The variable a prompt binds to: its name, with '-' and '.' made '_'."""
    return name.replace("-", "_").replace(".", "_")


def load(ipython: Any) -> None:
    from .llm import runtime

    magics = LLMOps(shell=ipython)
    ipython.register_magics(magics)
    if magics not in ipython.configurables:
        ipython.configurables.append(magics)
    runtime.watch_imports()  # trace litellm calls even when user code imports litellm itself
    _watch_alerts(ipython, on=True)
    print(banner())


def unload(ipython: Any) -> None:
    ipython.configurables[:] = [c for c in ipython.configurables if not isinstance(c, LLMOps)]
    _watch_alerts(ipython, on=False)


_alert_watch: Any = None


def show_fired_alerts(*_: Any) -> None:
    """post_run_cell: one warning line per alert that fired since the last cell."""
    import html

    from IPython.display import display

    for firing in _alert_watch.poll() if _alert_watch is not None else []:
        line = f"\u26a0 {firing.line()}"
        style = "color:#92400e;background:#fef3c7;padding:2px 6px;font-family:monospace"
        display(
            {"text/plain": line, "text/html": f'<div style="{style}">{html.escape(line)}</div>'},
            raw=True,
        )


def _watch_alerts(ipython: Any, on: bool) -> None:
    global _alert_watch
    from .alerts import AlertWatch

    if show_fired_alerts in ipython.events.callbacks["post_run_cell"]:
        ipython.events.unregister("post_run_cell", show_fired_alerts)
    if on:
        _alert_watch = _alert_watch or AlertWatch()
        ipython.events.register("post_run_cell", show_fired_alerts)
