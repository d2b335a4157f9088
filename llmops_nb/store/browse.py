"""Read queries for the JupyterLab sidebar: paginated pages the other mixins do not offer.

Queries only (paging, filters): no summarising. An eval run's numbers come from
`EvalRun.summary()` through `views.evals`, the same as in the notebook. Every list
returns (rows, total) so callers can page. Lookups never create a project: browsing
must not write.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import func
from sqlmodel import Session, SQLModel, select

from ..errors import NotFound
from . import models as m
from .base import StoreBase

R = TypeVar("R", bound=SQLModel)
Page = tuple[list[Any], int]


class BrowseQueries(StoreBase):
    """Paginated reads over projects, prompts, eval runs, fine-tunes and models."""

    # --- projects and change detection ------------------------------------------------

    def find_project_id(self, name: str) -> int | None:
        """The id of project NAME, or None when it does not exist (never creates it)."""
        if name in self._project_ids:
            return self._project_ids[name]
        with self.session() as s:
            pid = s.exec(select(m.Project.id).where(m.Project.name == name)).first()
        if pid is not None:
            self._project_ids[name] = pid
        return pid

    def project_name(self, project_id: int) -> str:
        """The name of the project with this id."""
        with self.session() as s:
            name = s.exec(select(m.Project.name).where(m.Project.id == project_id)).first()
        if name is None:
            raise NotFound(f"no project with id {project_id}")
        return name

    def project_page(self, limit: int, offset: int) -> Page:
        """Projects by name: name and creation time."""
        with self.session() as s:
            total = s.exec(select(func.count()).select_from(m.Project)).one()
            rows = s.exec(select(m.Project).order_by(m.Project.name).offset(offset).limit(limit))
            return list(rows), total

    def change_marker(self, project: str) -> str:
        """A cheap fingerprint of everything the sidebar shows; it changes when kernels write.

        Global id maxima (index lookups) plus the project's trace count and latest start,
        so a poll costs a few index reads, not a scan of the data.
        """
        pid = self.find_project_id(project)
        parts: list[Any] = [pid]
        with self.session() as s:
            for column in (
                m.PromptVersion.id,
                m.AliasEvent.id,
                m.EvalRun.id,
                m.EvalResult.id,
                m.FinetuneJob.id,
                m.FinetuneMetric.id,
                m.RegisteredModel.id,
                m.Feedback.id,
            ):
                parts.append(s.exec(select(func.max(column))).one())
            parts.append(
                s.exec(
                    select(func.count()).select_from(m.EvalRun).where(m.EvalRun.status == "running")
                ).one()
            )
            parts.append(
                s.exec(
                    select(func.count())
                    .select_from(m.FinetuneJob)
                    .where(m.FinetuneJob.status.in_(("queued", "running")))  # type: ignore[attr-defined]
                ).one()
            )
            if pid is not None:
                count, latest = s.exec(
                    select(func.count(), func.max(m.Trace.start_ns)).where(
                        m.Trace.project_id == pid
                    )
                ).one()
                parts += [count, latest]
        return ":".join("" if p is None else str(p) for p in parts)

    # --- prompts ------------------------------------------------------------------

    def prompt_versions_page(self, project: str, name: str, limit: int, offset: int) -> Page:
        """A prompt's versions, newest first."""
        pid = self._existing_project(project)
        with self.session() as s:
            prompt = s.exec(
                select(m.Prompt).where(m.Prompt.project_id == pid, m.Prompt.name == name)
            ).first()
            if prompt is None:
                raise NotFound(f"unknown prompt {name!r} in project {project!r}")
            query = select(m.PromptVersion).where(m.PromptVersion.prompt_id == prompt.id)
            return _page(
                s,
                query.order_by(m.PromptVersion.version.desc()),  # type: ignore[attr-defined]
                query,
                limit,
                offset,
            )

    # --- evaluations --------------------------------------------------------------

    def eval_runs_page(self, project: str, limit: int, offset: int) -> Page:
        """A project's eval runs, newest first (a run whose process died reads 'interrupted')."""
        pid = self.find_project_id(project)
        if pid is None:
            return [], 0
        self.settle_eval_runs(project)  # type: ignore[attr-defined]
        with self.session() as s:
            query = select(m.EvalRun).where(m.EvalRun.project_id == pid)
            order = (m.EvalRun.created_at.desc(), m.EvalRun.id.desc())  # type: ignore[attr-defined,union-attr]
            return _page(s, query.order_by(*order), query, limit, offset)

    def eval_run(self, run_id: int) -> m.EvalRun:
        with self.session() as s:
            run = s.get(m.EvalRun, run_id)
        if run is None:
            raise NotFound(f"no eval run with id {run_id}")
        return run

    def eval_results_page(
        self,
        run_id: int,
        limit: int,
        offset: int,
        prompt_ref: str | None = None,
        model_label: str | None = None,
    ) -> Page:
        """A page of one run's result rows, in grid order (prompt, model, data row)."""
        self.eval_run(run_id)
        r = m.EvalResult
        query = select(r).where(r.run_id == run_id)
        if prompt_ref is not None:
            query = query.where(r.prompt_ref == prompt_ref)
        if model_label is not None:
            query = query.where(r.model_label == model_label)
        with self.session() as s:
            order = query.order_by(r.prompt_ref, r.model_label, r.row_index)
            return _page(s, order, query, limit, offset)

    # --- fine-tunes and models ----------------------------------------------------

    def finetune_jobs_page(self, project: str, limit: int, offset: int) -> Page:
        """A project's fine-tune jobs, newest first."""
        pid = self.find_project_id(project)
        if pid is None:
            return [], 0
        with self.session() as s:
            query = select(m.FinetuneJob).where(m.FinetuneJob.project_id == pid)
            order = (m.FinetuneJob.created_at.desc(), m.FinetuneJob.id.desc())  # type: ignore[attr-defined,union-attr]
            return _page(s, query.order_by(*order), query, limit, offset)

    def finetune_job(self, job_id: int) -> m.FinetuneJob:
        with self.session() as s:
            job = s.get(m.FinetuneJob, job_id)
        if job is None:
            raise NotFound(f"no fine-tune job with id {job_id}")
        return job

    def finetune_metrics_page(self, job_id: int, limit: int, offset: int) -> Page:
        """A job's metrics by step (the loss curve), oldest first."""
        self.finetune_job(job_id)
        fm = m.FinetuneMetric
        with self.session() as s:
            query = select(fm).where(fm.job_id == job_id)
            return _page(s, query.order_by(fm.step, fm.id), query, limit, offset)

    def models_page(self, project: str, limit: int, offset: int) -> Page:
        """The project's registered models, newest first."""
        pid = self.find_project_id(project)
        if pid is None:
            return [], 0
        rm = m.RegisteredModel
        with self.session() as s:
            query = select(rm).where(rm.project_id == pid)
            order = (rm.name, rm.version.desc())  # type: ignore[attr-defined]
            return _page(s, query.order_by(*order), query, limit, offset)

    def _existing_project(self, project: str) -> int:
        pid = self.find_project_id(project)
        if pid is None:
            raise NotFound(f"unknown project {project!r}")
        return pid


def _page(s: Session, ordered: Any, query: Any, limit: int, offset: int) -> Page:
    """Rows of one page and the total count of the unpaginated query."""
    total = s.exec(select(func.count()).select_from(query.subquery())).one()
    rows = list(s.exec(ordered.offset(offset).limit(limit)))
    return rows, total
