import multiprocessing as mp
import time

import pytest

import storage as st
from storage import jobs as jobq


@pytest.fixture()
def dbfile(tmp_path):
    st.connect(tmp_path / "q.db")
    return tmp_path / "q.db"


def _claimer(path, name, barrier, out):
    db = st.connect(path)
    barrier.wait()
    job = jobq.claim(db, name)
    out.put((name, job.id if job else None))


def test_two_workers_racing_for_one_job_exactly_one_wins(dbfile):
    db = st.connect(dbfile)
    for _ in range(5):  # repeat the race
        job = jobq.enqueue(db, "predict", {"run_id": 1})
        ctx = mp.get_context("fork")
        barrier, out = ctx.Barrier(2), ctx.Queue()
        procs = [ctx.Process(target=_claimer, args=(str(dbfile), f"w{i}", barrier, out)) for i in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(30)
        got = [out.get(timeout=5) for _ in procs]
        winners = [name for name, jid in got if jid == job.id]
        assert len(winners) == 1
        assert jobq.get_job(db, job.id).worker_id == winners[0]
        assert [jid for _, jid in got].count(None) == 1


def test_stale_job_is_reclaimed_and_counts_attempts(dbfile):
    db = st.connect(dbfile)
    job = jobq.enqueue(db, "predict", {})
    assert jobq.claim(db, "a").id == job.id
    assert jobq.claim(db, "b", stale_after_s=60) is None  # a is alive
    time.sleep(0.05)
    again = jobq.claim(db, "b", stale_after_s=0.01)
    assert again.id == job.id and again.worker_id == "b" and again.attempts == 2
    assert not jobq.heartbeat(db, job.id, "a")  # a lost it
    assert not jobq.finish(db, job.id, "a", "succeeded")
    assert jobq.finish(db, job.id, "b", "succeeded", result={"ok": 1})
    assert jobq.get_job(db, job.id).result == {"ok": 1}


def test_job_given_up_after_max_attempts(dbfile):
    db = st.connect(dbfile)
    job = jobq.enqueue(db, "predict", {})
    for w in "abc":
        time.sleep(0.02)
        assert jobq.claim(db, w, stale_after_s=0.01, max_attempts=3).id == job.id
    time.sleep(0.02)
    assert jobq.claim(db, "d", stale_after_s=0.01, max_attempts=3) is None
    j = jobq.get_job(db, job.id)
    assert j.status == "failed" and "stopped 3 times" in j.error


def test_cancel_queued_and_running(dbfile):
    db = st.connect(dbfile)
    a = jobq.enqueue(db, "predict", {})
    b = jobq.enqueue(db, "predict", {})
    assert jobq.request_cancel(db, a.id).status == "cancelled"
    assert jobq.claim(db, "w").id == b.id  # the cancelled one is skipped
    assert jobq.request_cancel(db, b.id).status == "running"
    assert jobq.cancel_requested(db, b.id)


def test_dead_workers_cancelled_job_is_not_run_again(dbfile):
    db = st.connect(dbfile)
    job = jobq.enqueue(db, "predict", {})
    jobq.claim(db, "a")
    jobq.request_cancel(db, job.id)
    time.sleep(0.05)  # worker a dies before it notices
    assert jobq.claim(db, "b", stale_after_s=0.01) is None
    assert jobq.get_job(db, job.id).status == "cancelled"


def test_progress_and_unknown_kind(dbfile):
    db = st.connect(dbfile)
    job = jobq.enqueue(db, "list_run", {"run_id": 3}, None)
    jobq.claim(db, "w")
    jobq.progress(db, job.id, "teacher", 5, 10, 12.5, "hello")
    j = jobq.get_job(db, job.id)
    assert (j.stage, j.step, j.total, j.eta_seconds, j.message) == ("teacher", 5, 10, 12.5, "hello")
    with pytest.raises(st.StoreError, match="job kind 'train'"):
        jobq.enqueue(db, "train", {})


def _writer(path, kind, n, errors):
    from storage.runs import create_run, save_round

    db = st.connect(path)
    p = st.list_projects(db)[0]
    ex = [e.id for e in st.page_examples(db, p.id, limit=1000)]
    try:
        if kind == "ui":
            for i in range(n):
                st.set_label(db, ex[i % len(ex)], i % 2)
        else:
            run = create_run(db, p.id, "list", "fast", {}, 1, "x", None)
            for i in range(n):
                save_round(db, run.id, i, {"round": i}, [
                    {"example_id": e, "probs": [0.5, 0.5], "label": 0, "confidence": 0.5, "weight": 0.1, "flipped": False}
                    for e in ex
                ])  # fmt: skip
    except Exception as e:  # any "database is locked" ends up here
        errors.put(repr(e))


def test_ui_and_worker_writing_together_never_lock(dbfile):
    db = st.connect(dbfile)
    p = st.create_project(db, "c", "single", ["a", "b"], "x")
    st.add_examples(db, p.id, [{"text": f"t{i}"} for i in range(300)])
    ctx = mp.get_context("fork")
    errors = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(str(dbfile), k, 200, errors)) for k in ("ui", "worker")]
    for pr in procs:
        pr.start()
    for pr in procs:
        pr.join(120)
    assert errors.empty(), errors.get()
    assert db.execute("SELECT count(*) FROM label_history").fetchone()[0] >= 199
    assert db.execute("SELECT count(*) FROM rounds").fetchone()[0] == 200


def test_lanes_keep_light_jobs_apart_from_training(dbfile):
    """Issue 12.2: a prediction queued behind a training run waited 21 minutes. A lane claims only its kinds."""
    db = st.connect(dbfile)
    train = jobq.enqueue(db, "list_run", {"run_id": 1})
    light = jobq.enqueue(db, "predict", {"run_id": 1})
    assert jobq.claim(db, "light", kinds=jobq.LANES["light"]).id == light.id
    assert jobq.claim(db, "light", kinds=jobq.LANES["light"]) is None  # never a training job
    assert jobq.claim(db, "train", kinds=jobq.LANES["train"]).id == train.id
    assert set(jobq.LANES["train"]) | set(jobq.LANES["light"]) == set(jobq.KINDS)
    with pytest.raises(st.StoreError, match="'nope'"):
        jobq.claim(db, "x", kinds=("nope",))


def test_a_dead_workers_job_is_taken_back_before_newer_queued_jobs(dbfile):
    """Issue 12.2: after a kill, the next worker took the next queued run while the killed one showed a frozen
    'running' for as long as that run took. A job whose worker is gone (no longer registered, or its process dead
    on this host) is resumed at once and first, without waiting for its heartbeat to go stale."""
    import os
    import socket

    db = st.connect(dbfile)
    orphan = jobq.enqueue(db, "list_run", {"run_id": 1})
    assert jobq.claim(db, "dead").id == orphan.id
    jobq.register_worker(db, "dead", 2**22 + 12345, socket.gethostname())  # no such pid: it was killed
    newer = jobq.enqueue(db, "list_run", {"run_id": 2})
    jobq.register_worker(db, "alive", os.getpid(), socket.gethostname())
    assert jobq.claim(db, "next", stale_after_s=60).id == orphan.id  # heartbeat fresh, but its worker is dead
    assert jobq.get_job(db, orphan.id).attempts == 2
    assert jobq.claim(db, "next2", stale_after_s=60).id == newer.id
    # a job of a live worker on this host is left alone
    assert jobq.claim(db, "other", stale_after_s=60) is None


def test_a_job_that_keeps_making_progress_is_never_given_up(dbfile):
    """Only deaths in a row without a finished round count towards the give-up (a crash loop); a long run killed
    many times while it moves forward is resumed every time."""
    db = st.connect(dbfile)
    job = jobq.enqueue(db, "list_run", {"run_id": 1})
    for i in range(6):
        w = f"w{i}"
        assert jobq.claim(db, w, stale_after_s=0.01, max_attempts=3).id == job.id
        jobq.made_progress(db, job.id, w)  # a round finished before this worker died
        time.sleep(0.05)
    assert jobq.get_job(db, job.id).attempts == 6 and jobq.get_job(db, job.id).status == "running"


def test_has_queued_sees_only_claimable_jobs_of_the_kinds_asked(dbfile):
    db = st.connect(dbfile)
    assert not jobq.has_queued(db, ("predict", "export"))
    job = jobq.enqueue(db, "list_run", {"run_id": 1})
    assert not jobq.has_queued(db, ("predict", "export")) and jobq.has_queued(db, ("list_run",))
    jobq.claim(db, "w1")
    assert not jobq.has_queued(db, ("list_run",))  # running, not queued
    jobq.enqueue(db, "predict", {"run_id": 1})
    assert jobq.has_queued(db, ("predict",))
    jobq.request_cancel(db, jobq.list_jobs(db)[0].id)
    assert not jobq.has_queued(db, ("predict",)) and jobq.get_job(db, job.id).status == "running"


def test_a_jobs_age_counts_from_when_it_was_queued(dbfile):
    db = st.connect(dbfile)
    job = jobq.enqueue(db, "predict", {"run_id": 1})
    first = jobq.age_s(job)
    time.sleep(0.05)
    assert 0 <= first < jobq.age_s(job) < 30


def test_imports_in_a_row_queue_one_read_ahead_and_it_does_not_block_deleting_the_project(dbfile):
    """An import queues the texts read ahead (`embed`) and the diverse order (background `diversity`, only when the
    pool grew); imports in a row queue one of each; queued, they go with a deleted project."""
    db = st.connect(dbfile)
    p = st.create_project(db, "p", "single", ["a", "b"], "x")
    embed, order = jobq.read_ahead(db, p.id)
    assert (embed.kind, order.kind, order.payload) == ("embed", "diversity", {"background": True})
    assert [j.id for j in jobq.read_ahead(db, p.id)] == [embed.id, order.id]
    assert [j.id for j in jobq.read_ahead(db, p.id, pool=False)] == [embed.id]  # an evaluation split: no new order
    assert jobq.active_job(db, p.id, "diversity").id == order.id and jobq.active_job(db, p.id, "predict") is None
    assert jobq.claim(db, "w1").id == embed.id  # running: the next import queues another
    assert jobq.read_ahead(db, p.id)[0].id != embed.id
    with pytest.raises(st.StoreError, match=f"running jobs \\[{embed.id}\\]"):
        st.delete_project(db, p.id)  # a running one does block it
    jobq.finish(db, embed.id, "w1", "succeeded", {"embedded": 0})
    st.delete_project(db, p.id)  # the queued ones go with the project
    assert not st.list_projects(db) and not jobq.list_jobs(db)


def test_background_work_is_claimed_after_the_users_jobs_and_makes_way_for_them(dbfile):
    """A diverse order or texts read ahead after an import must not keep a user waiting for the board of a scoring:
    a worker claims them after every queued job of the user's, and one that runs goes back to the queue when a
    user's job arrives (`make_way`), then is claimed again after it."""
    db = st.connect(dbfile)
    p = st.create_project(db, "p", "single", ["a", "b"], "x")
    embed, order = jobq.read_ahead(db, p.id)
    light = jobq.LANES["light"]
    assert not jobq.user_job_waiting(db, light) and jobq.has_queued(db, light)
    scoring = jobq.enqueue(db, "prompt_eval", {"candidates": []}, p.id)
    assert jobq.user_job_waiting(db, light) and not jobq.user_job_waiting(db, jobq.LANES["train"])
    assert jobq.claim(db, "w1", kinds=light).id == scoring.id  # queued last, claimed first
    assert jobq.claim(db, "w1", kinds=light).id == embed.id
    jobq.enqueue(db, "diversity", {}, p.id)  # the user's click on "Compute a diverse order" is not background work
    assert jobq.user_job_waiting(db, light)
    assert jobq.make_way(db, embed.id, "w1") and not jobq.make_way(db, embed.id, "w1")  # once: it is queued now
    again = jobq.get_job(db, embed.id)
    assert (again.status, again.attempts) == ("queued", 0) and "made way" in again.message
    assert [jobq.claim(db, "w2", kinds=light).kind for _ in range(3)] == ["diversity", "embed", "diversity"]
    assert jobq.get_job(db, order.id).status == "running"
