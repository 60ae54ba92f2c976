"""Teachers a study needs, trained before its first trial through the harness runner.

A study's teacher is the suite's teacher trained on the study's training split (the validation
split is held out from the teacher too, so no trial sees a teacher that saw the validation
images). Missing teachers are trained with :func:`benchmark.runner.execute` (same recipe, CE
only, tracked in ``kdbench/<suite>-tune``); a lock file in the store makes concurrent ``kdbench
tune`` processes on one machine train each teacher once.
"""

from __future__ import annotations

from benchmark.runner import Plan, RunOptions, execute
from benchmark.store import Store
from studies.storage import exclusive_lock


def ensure_teachers(targets, suite, options: RunOptions, tracker) -> set[str]:
    """Train the teachers the targets need; returns config hashes of teachers that failed."""
    from benchmark.plan import teacher_specs
    from benchmark.teachers import TeacherStore

    store = TeacherStore(options.store)
    with exclusive_lock(Store(options.store).lock("tune-teachers")):
        missing = [t for t in teacher_specs(target.base for target in targets)
                   if not store.has(t)]
        if not missing:
            return set()
        plan = Plan(suite=suite, runs=[], done=[], todo=[], teachers_to_train=missing,
                    cohorts=[])
        outcome = execute(plan, options, tracker)
    return {r.spec.config_hash for r in outcome.results if r.status != "FINISHED"}
