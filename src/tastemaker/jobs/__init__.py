"""Jobs: generation jobs and the worker pools the service runs its CPU work in.

* :mod:`.tasks` — the work itself (picklable task functions that return outcomes, never raise)
* :mod:`.pools` — worker processes (or threads) behind one interface; a stuck task's worker alone is stopped
* :mod:`.state` — a job's persisted state machine (``queued -> running -> succeeded | failed | cancelled``)
* :mod:`.admission` — the bounded queue's slots and per-account counts
* :mod:`.watch` — progress documents and subscriptions to a job's changes (SSE, ``Prefer: wait``)
* :mod:`.runner` — :class:`JobRunner`, which ties them together for one server process
* :mod:`.verify` — :class:`VerifyPool`, provenance checks in a bounded pool of their own
"""

from __future__ import annotations

from .admission import Admission, Slot
from .pools import CPU_NICE, JOB_NICE, VERIFY_NICE, Foreground, WorkerPool
from .runner import JobPayload, JobRunner
from .state import INTERRUPTED, INTERRUPTED_MESSAGE, JOB_TIMEOUT, RETRYABLE, WORKER_CRASHED, JobStates
from .tasks import (
    GeneratedBlob,
    Outcome,
    task_build_profile,
    task_describe,
    task_generate,
    task_prepare_subject,
    task_verify,
    task_warm,
    unwrap,
    verify_input,
)
from .verify import VerifyPool, VerifySlot
from .watch import STAGES, Watch, Watchers, progress_doc

__all__ = [
    "CPU_NICE",
    "Foreground",
    "INTERRUPTED",
    "INTERRUPTED_MESSAGE",
    "JOB_NICE",
    "JOB_TIMEOUT",
    "RETRYABLE",
    "STAGES",
    "VERIFY_NICE",
    "WORKER_CRASHED",
    "Admission",
    "GeneratedBlob",
    "JobPayload",
    "JobRunner",
    "JobStates",
    "Outcome",
    "Slot",
    "VerifyPool",
    "VerifySlot",
    "Watch",
    "Watchers",
    "WorkerPool",
    "progress_doc",
    "task_build_profile",
    "task_describe",
    "task_generate",
    "task_prepare_subject",
    "task_verify",
    "task_warm",
    "unwrap",
    "verify_input",
]
