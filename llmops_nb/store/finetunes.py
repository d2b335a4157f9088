"""Queries for fine-tune jobs and the metrics their workers stream.

A job's status only moves forward (queued -> running -> completed | failed | cancelled):
every status write names the states it may leave, so a cancel and a worker finishing at
the same moment cannot both win. Sample generations ride in a metric row's `extra`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, select

from ..errors import FineTuneError, NotFound
from . import models as m
from .base import StoreBase

ACTIVE = ("queued", "running")
FINISHED = ("completed", "failed", "cancelled")


class FinetuneQueries(StoreBase):
    """Fine-tune jobs: one row each, a status that only moves forward, a metric stream.
    (`finetune_job(id)` and the sidebar's pages live in BrowseQueries.)"""

    def create_finetune_job(self, project: str, name: str, **fields: Any) -> m.FinetuneJob:
        """Insert a queued job NAME, unless the project already has a job of that name.

        `fields`: the FinetuneJob columns (base, method, backend, params, data_hash, ...).
        """
        project_id = self.project_id(project)

        def add(s: Session) -> m.FinetuneJob:
            # Serialize job creation per project (PostgreSQL; SQLite writers already are).
            s.exec(select(m.Project.id).where(m.Project.id == project_id).with_for_update())
            existing = s.exec(
                select(m.FinetuneJob).where(
                    m.FinetuneJob.project_id == project_id, m.FinetuneJob.name == name
                )
            ).first()
            if existing is not None:
                raise FineTuneError(
                    f"a fine-tune job named {name!r} already exists in project {project!r} "
                    f"(job #{existing.id}, {existing.status}): pass another name=, or "
                    f"reattach with lo.finetune_job({name!r})"
                )
            row = m.FinetuneJob(project_id=project_id, name=name, status="queued", **fields)
            s.add(row)
            s.flush()
            return row

        return self.write(add)

    def finetune_job_named(self, project: str, name: str) -> m.FinetuneJob | None:
        """The project's job called NAME, or None."""
        pid = self._existing_project_id(project)
        if pid is None:
            return None
        with self.session() as s:
            return s.exec(
                select(m.FinetuneJob).where(
                    m.FinetuneJob.project_id == pid, m.FinetuneJob.name == name
                )
            ).first()

    def finetune_job_names(self, project: str) -> list[str]:
        pid = self._existing_project_id(project)
        if pid is None:
            return []
        with self.session() as s:
            return list(s.exec(select(m.FinetuneJob.name).where(m.FinetuneJob.project_id == pid)))

    def list_finetune_jobs(self, project: str) -> list[m.FinetuneJob]:
        """Every job of the project, newest first."""
        pid = self._existing_project_id(project)
        if pid is None:
            return []
        with self.session() as s:
            return list(
                s.exec(
                    select(m.FinetuneJob)
                    .where(m.FinetuneJob.project_id == pid)
                    .order_by(m.FinetuneJob.id.desc())  # type: ignore[union-attr]
                )
            )

    def update_finetune_job(
        self, job_id: int, *, only_from: tuple[str, ...] | None = None, **fields: Any
    ) -> bool:
        """Set FIELDS on the job; with ONLY_FROM, only while its status is one of those.

        Moving to a finished status stamps finished_at, to running started_at. Returns
        whether the row was changed.
        """

        def change(s: Session) -> bool:
            job = s.exec(
                select(m.FinetuneJob).where(m.FinetuneJob.id == job_id).with_for_update()
            ).first()
            if job is None:
                raise NotFound(f"no fine-tune job with id {job_id}")
            if only_from is not None and job.status not in only_from:
                return False
            now = datetime.now(UTC)
            status = fields.get("status")
            if status == "running" and job.started_at is None:
                job.started_at = now
            if status in FINISHED:
                job.finished_at = now
            for key, value in fields.items():
                setattr(job, key, value)
            s.add(job)
            return True

        return self.write(change)

    def add_finetune_metrics(self, job_id: int, rows: list[dict[str, Any]]) -> None:
        """Append metric rows: step, epoch, loss, lr, and anything else in `extra`."""
        if not rows:
            return

        def add(s: Session) -> None:
            for row in rows:
                s.add(
                    m.FinetuneMetric(
                        job_id=job_id,
                        step=int(row["step"]),
                        epoch=row.get("epoch"),
                        loss=row.get("loss"),
                        lr=row.get("lr"),
                        extra=dict(row.get("extra") or {}),
                    )
                )

        self.write(add)

    def finetune_metrics(self, job_id: int) -> list[m.FinetuneMetric]:
        """A job's metric rows by step, oldest first."""
        fm = m.FinetuneMetric
        with self.session() as s:
            return list(s.exec(select(fm).where(fm.job_id == job_id).order_by(fm.step, fm.id)))

    def project_name(self, project_id: int) -> str:
        with self.session() as s:
            project = s.get(m.Project, project_id)
        if project is None:
            raise NotFound(f"no project with id {project_id}")
        return project.name

    def _existing_project_id(self, project: str) -> int | None:
        """The project's id, or None when it does not exist (reads never create one)."""
        if project in self._project_ids:
            return self._project_ids[project]
        with self.session() as s:
            return s.exec(select(m.Project.id).where(m.Project.name == project)).first()
