# Copyright (c) mmext contributors. All rights reserved.
"""Find training runs on disk and read them back as one record each.

mmpretrain's ``analyze_logs`` reads one ``scalars.json`` per call; a resumed
run is split over one ``<timestamp>/vis_data/scalars.json`` per process, so
its curves show only the last part. Here a work dir is read as a whole:

- every ``WORK/<timestamp>/`` folder of a training process, in timestamp
  order; a later part replaces what an earlier one logged after the
  checkpoint it resumed from (a crash half-way through an epoch);
- ``tools/test.py`` runs in the same work dir (``WORK/<ts>/<ts>.json``) and
  ``tools/test.py --out x.json --out-item metrics`` files in the work dir;
- the dumped config (the last training part's ``vis_data/config.py``, else
  ``WORK/<name>.py``), checkpoints, log files and the wall time (first to
  last log line of every part);
- the status: ``finished`` (the schedule's last epoch / iteration was
  logged or saved), ``crashed`` (an error line: the ``ERROR`` line
  :class:`~mmext.engine.hooks.RunStatusHook` logs, ``traceback.txt`` of an
  HPO trial, a ``*.err`` / ``*.out`` file's traceback) or ``stopped``;
- ``tools/hpo.py`` study folders (``study.db`` / ``trials.json``): one run
  per trial (its ``trial_N`` work dir) with the trial's parameters, state
  and failure reason.
"""
import glob
import json
import os
import os.path as osp
import re
from dataclasses import dataclass, field
from datetime import datetime

from mmext.utils.fileio import InputFileError, read_text_file

__all__ = [
    'Run', 'RunError', 'read_scalars', 'join_parts', 'load_run', 'load_study',
    'discover_runs', 'flat_config', 'is_study_dir'
]

_TS = re.compile(r'^\d{8}_\d{6}$')
_LOG_TIME = re.compile(r'^(\d{4}/)?(\d\d/\d\d \d\d:\d\d:\d\d) - ')
_ERROR_LINE = re.compile(r' - mmengine - ERROR - (?:.*? - \w+ - \d+ - )?(.*)$')
_EXC_LINE = re.compile(r'^([A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)'
                       r'|Killed|KeyboardInterrupt)\b.*')
NOT_METRICS = ('step', 'time', 'data_time', 'epoch', 'iter', 'lr', 'memory')
MAX_JSON = 256 << 20  # a scalars.json of a very long run, never more


class RunError(ValueError):
    """A path that is not a run, or a run file that cannot be read."""


@dataclass
class Run:
    """Everything read back from one training run (or one HPO trial)."""
    name: str
    work_dir: str
    config: dict = field(default_factory=dict)
    config_path: str = None
    parts: list = field(default_factory=list)  # timestamp folders
    logs: list = field(default_factory=list)
    train: list = field(default_factory=list)  # scalars lines, parts joined
    val: list = field(default_factory=list)
    test: dict = field(default_factory=dict)
    test_source: str = None
    checkpoints: list = field(default_factory=list)
    wall_time: float = None
    status: str = 'stopped'
    error: str = None
    params: dict = field(default_factory=dict)  # HPO trial parameters
    study: str = None
    notes: list = field(default_factory=list)

    @property
    def by_epoch(self):
        return any('epoch' in r for r in self.train) or bool(
            self.config.get('train_cfg', {}).get('by_epoch', not self.train))

    @property
    def model_type(self):
        model = self.config.get('model') or {}
        return model.get('type', 'unknown') if isinstance(model,
                                                          dict) else 'unknown'


def read_scalars(path):
    """``(train, val)`` lines of one ``scalars.json``.

    Train lines hold ``loss`` / ``lr``; validation lines hold metric keys
    and ``step`` (the epoch, or the iteration for iteration-based loops).
    A truncated last line (a process killed while writing) is skipped.
    """
    try:
        text = read_text_file(path, 'scalars file', MAX_JSON)
    except InputFileError as exc:
        raise RunError(str(exc)) from None
    train, val = [], []
    lines = text.splitlines()
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            if i == len(lines):  # written while the process died
                break
            raise RunError(f'{path}: line {i} is not JSON (a scalars.json '
                           'line is one JSON object); fix or remove it')
        if not isinstance(row, dict) or 'step' not in row:
            raise RunError(f'{path}: line {i} has no "step" (not an mmengine '
                           'scalars.json line)')
        (train if 'loss' in row or 'lr' in row else val).append(row)
    return train, val


def join_parts(parts):
    """Join ``(train, val)`` of the parts of a resumed run, oldest first.

    A part resumed from a checkpoint repeats what the earlier part logged
    after that checkpoint: those earlier lines are dropped.
    """
    train, val = [], []
    for t, v in parts:
        if t:
            first = t[0]
            if 'epoch' in first:  # epoch-based: resumed after epoch - 1
                done = first['epoch'] - 1
                train = [r for r in train if r.get('epoch', 0) <= done]
                val = [r for r in val if r['step'] <= done]
            else:
                train = [r for r in train if r['step'] < first['step']]
                val = [r for r in val if r['step'] < first['step']]
        train += t
        val += v
    return train, val


def flat_config(cfg, prefix=''):
    """Dotted keys -> leaf values (lists of dicts by index, other lists as
    tuples)."""
    out = {}
    if isinstance(cfg, dict):
        for k, v in cfg.items():
            out.update(flat_config(v, f'{prefix}{k}.'))
    elif isinstance(cfg,
                    (list, tuple)) and any(isinstance(x, dict) for x in cfg):
        for i, v in enumerate(cfg):
            out.update(flat_config(v, f'{prefix}{i}.'))
    elif isinstance(cfg, (list, tuple)):
        out[prefix[:-1]] = tuple(cfg)
    else:
        out[prefix[:-1]] = cfg
    return out


def _load_config(path):
    from mmengine.config import Config
    try:
        return Config.fromfile(
            path, import_custom_modules=False).to_dict(), None
    except Exception as exc:  # a broken dump must not stop the comparison
        line = str(exc).strip().splitlines() or ['']
        return {}, f'config {path} not read: {type(exc).__name__}: {line[-1]}'


def _head_tail(path, size=65536):
    with open(path, 'rb') as f:
        head = f.read(4096).decode('utf-8', 'replace')
        f.seek(max(os.fstat(f.fileno()).st_size - size, 0))
        tail = f.read().decode('utf-8', 'replace')
    return head, tail


def _log_seconds(path, year):
    """Seconds from the first to the last time-stamped line of a log."""
    head, tail = _head_tail(path)
    stamps = []
    for text in (head, tail):
        for line in text.splitlines():
            m = _LOG_TIME.match(line)
            if m:
                stamp = (m.group(1) or f'{year}/') + m.group(2)
                stamps.append(datetime.strptime(stamp, '%Y/%m/%d %H:%M:%S'))
    return (max(stamps) - min(stamps)).total_seconds() if stamps else None


def _error_in(path, mmengine_log):
    """The last error line of a log (``ERROR`` lines of mmengine logs;
    the exception line ending a traceback in other files)."""
    _, tail = _head_tail(path)
    found = None
    for line in tail.splitlines():
        if mmengine_log:
            m = _ERROR_LINE.search(line)
            if m:
                found = m.group(1).strip()
        elif _EXC_LINE.match(line.strip()) and ('Traceback' in tail
                                                or 'Killed' in line):
            found = line.strip()
    return found


def _flat_metrics(path):
    """A ``tools/test.py --out-item metrics`` JSON: ``{name: number}``."""
    try:
        data = json.loads(read_text_file(path, 'metrics file', 1 << 20))
    except (InputFileError, ValueError):
        return None
    if (isinstance(data, dict) and data and all(
            isinstance(v, (int, float)) and not isinstance(v, bool)
            for v in data.values())):
        return {k: v for k, v in data.items() if k not in NOT_METRICS}
    return None


def _reached_end(run):
    cfg = run.config.get('train_cfg') or {}
    if run.by_epoch:
        end = cfg.get('max_epochs')
        if not end:
            return False
        if osp.exists(osp.join(run.work_dir, f'epoch_{end}.pth')):
            return True
        if any(r['step'] >= end for r in run.val):
            return True
        first = [r['iter'] for r in run.train if r.get('epoch') == 1]
        last = [r for r in run.train if r.get('epoch') == end]
        return bool(first and last and last[-1]['iter'] >= end * max(first))
    end = cfg.get('max_iters')
    return bool(end) and (osp.exists(
        osp.join(run.work_dir, f'iter_{end}.pth')) or any(r['step'] >= end
                                                          for r in run.train))


def _find_error(run):
    found = None
    for log in run.logs:  # oldest part first: the last error wins
        found = _error_in(log, True) or found
    extra = [osp.join(run.work_dir, 'traceback.txt')] + sorted(
        glob.glob(osp.join(run.work_dir, '*.err')) +
        glob.glob(osp.join(run.work_dir, '*.out')))
    for path in extra:
        if osp.isfile(path):
            found = _error_in(path, False) or found
    return found


def load_run(work_dir, name=None):
    """Read one mmengine work dir.

    Raises:
        RunError: ``work_dir`` holds no run (no timestamp folder, config
            dump or checkpoint), one line naming it.
    """
    if not osp.isdir(work_dir):
        raise RunError(f'{work_dir}: not a directory (give mmengine work '
                       'dirs, e.g. work_dirs/flowers_*)')
    run = Run(
        name=name or osp.basename(osp.normpath(work_dir)), work_dir=work_dir)
    folders = sorted(
        d for d in os.listdir(work_dir)
        if _TS.match(d) and osp.isdir(osp.join(work_dir, d)))
    run.checkpoints = sorted(
        glob.glob(osp.join(work_dir, '*.pth')), key=osp.getmtime)
    parts, config_path, seconds = [], None, 0.0
    for ts in folders:
        d = osp.join(work_dir, ts)
        log = osp.join(d, f'{ts}.log')
        scalars = osp.join(d, 'vis_data', 'scalars.json')
        if osp.isfile(osp.join(d, f'{ts}.json')):  # a tools/test.py run
            metrics = _flat_metrics(osp.join(d, f'{ts}.json'))
            if metrics:
                run.test, run.test_source = metrics, osp.join(d, f'{ts}.json')
            continue
        run.parts.append(d)
        if osp.isfile(scalars):
            parts.append(read_scalars(scalars))
        if osp.isfile(osp.join(d, 'vis_data', 'config.py')):
            config_path = osp.join(d, 'vis_data', 'config.py')
        if osp.isfile(log):
            run.logs.append(log)
            took = _log_seconds(log, ts[:4])
            seconds += took or 0.0
    run.train, run.val = join_parts(parts)
    run.wall_time = seconds if run.logs else None
    dumps = sorted(glob.glob(osp.join(work_dir, '*.py')))
    config_path = config_path or (dumps[0] if dumps else None)
    if not run.parts and not config_path and not run.checkpoints:
        raise RunError(f'{work_dir}: not a run (no <timestamp>/ folder, '
                       'config dump or checkpoint); give a work dir that '
                       'tools/train.py or tools/hpo.py wrote')
    if config_path:
        run.config_path = config_path
        run.config, note = _load_config(config_path)
        if note:
            run.notes.append(note)
    for path in sorted(glob.glob(osp.join(work_dir, '*.json'))):
        metrics = _flat_metrics(path)
        if metrics:  # an explicit --out file wins over the test log
            run.test, run.test_source = metrics, path
    run.error = _find_error(run)
    run.status = ('crashed' if run.error else
                  'finished' if _reached_end(run) else 'stopped')
    return run


def is_study_dir(path):
    return osp.isdir(path) and (osp.isfile(osp.join(path, 'study.db'))
                                or osp.isfile(osp.join(path, 'trials.json')))


def _study_trials(study_dir):
    """Trial dicts (number, state, params, fail_reason) of a study folder:
    the Optuna storage of ``summary.json`` / ``study.db``, else
    ``trials.json``."""
    summary, storage, names = {}, None, None
    if osp.isfile(osp.join(study_dir, 'summary.json')):
        try:
            summary = json.loads(
                read_text_file(
                    osp.join(study_dir, 'summary.json'), 'HPO summary',
                    1 << 24))
        except (InputFileError, ValueError):
            summary = {}
    storage = summary.get('storage')
    if not storage and osp.isfile(osp.join(study_dir, 'study.db')):
        storage = f'sqlite:///{osp.abspath(study_dir)}/study.db'
    if storage:
        try:
            import optuna
            optuna.logging.set_verbosity(optuna.logging.WARNING)
            names = ([summary['study_name']] if summary.get('study_name') else
                     optuna.get_all_study_names(storage))
            rows = []
            for name in names:
                study = optuna.load_study(study_name=name, storage=storage)
                for t in study.get_trials(deepcopy=False):
                    rows.append(
                        dict(
                            study=name,
                            number=t.number,
                            state=t.state.name,
                            params=t.params,
                            fail_reason=t.user_attrs.get('fail_reason'),
                            work_dir=t.user_attrs.get('work_dir')))
            return rows
        except Exception as exc:  # fall back on the table tools/hpo wrote
            note = f'{type(exc).__name__}: {exc}'.splitlines()[0]
            if not osp.isfile(osp.join(study_dir, 'trials.json')):
                raise RunError(f'{study_dir}: study storage {storage} not '
                               f'read ({note}) and no trials.json') from None
    try:
        rows = json.loads(
            read_text_file(
                osp.join(study_dir, 'trials.json'), 'HPO trial table',
                1 << 26))
    except (InputFileError, ValueError) as exc:
        raise RunError(f'{study_dir}: trials.json not read: {exc}') from None
    name = summary.get('study_name') or osp.basename(osp.normpath(study_dir))
    return [dict(r, study=name) for r in rows]


def load_study(study_dir):
    """One :class:`Run` per trial of a ``tools/hpo.py`` study folder."""
    runs = []
    for t in _study_trials(study_dir):
        work = osp.join(study_dir, f'trial_{t["number"]}')
        name = f'{osp.basename(osp.normpath(study_dir))}/trial_{t["number"]}'
        try:
            run = load_run(work, name)
        except RunError:  # a trial that failed before writing anything
            run = Run(name=name, work_dir=work)
        run.study, run.params = t['study'], dict(t.get('params') or {})
        state = t['state']
        if state == 'FAIL':
            run.status = 'crashed'
            reason = t.get('fail_reason') or run.error or 'no reason recorded'
            run.error = reason.strip().splitlines()[-1]
        elif state == 'PRUNED':
            run.status = 'pruned'
        elif state == 'COMPLETE':
            run.status = 'finished'
        runs.append(run)
    return runs


def discover_runs(paths):
    """Runs of work dirs and HPO study folders, in the given order.

    A folder holding work dirs (``work_dirs/``) is not a run: give its
    children (``work_dirs/flowers_*``).
    """
    runs = []
    for path in paths:
        path = str(path)
        if is_study_dir(path):
            runs += load_study(path)
        else:
            runs.append(load_run(path))
    if not runs:
        raise RunError('no runs given (pass work dirs or HPO study folders)')
    return runs
