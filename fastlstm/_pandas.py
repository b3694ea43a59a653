"""pandas in and out of the forecaster, without ever importing pandas unless
the user's data is already pandas (pandas stays optional).

A series given as a ``pd.Series`` / ``pd.DataFrame`` leaves an *index
record*: a small JSON-able dict that says how to continue its time index
(a DatetimeIndex with its frequency, a PeriodIndex, a regular integer
index, or plain positions) and what the variables are called. Forecasts
are then labelled with the steps that follow. The record goes into model
files as it is.
"""

import numpy as np

__all__ = ["is_pandas", "index_record", "check_record", "check_continues", "advance",
           "forecast_index", "wrap", "check_same_index"]


def is_pandas(obj):
    """A pandas Series or DataFrame (checked without importing pandas)."""
    mod = type(obj).__module__ or ""
    return mod.split(".")[0] == "pandas" and hasattr(obj, "index") and hasattr(obj, "to_numpy")


def _pd():
    try:
        import pandas as pd
    except ImportError:  # a model fitted on pandas data, unpickled or loaded without pandas
        raise ImportError("this forecaster was fitted on pandas data and labels its forecasts "
                          "with a pandas index: install pandas (pip install pandas)") from None
    return pd


def _json_label(v):
    """A column or series name as JSON can hold it, or None."""
    if isinstance(v, (bool, np.bool_)):
        return None
    if isinstance(v, (str, int, np.integer)):
        return v if isinstance(v, str) else int(v)
    return None


def index_record(obj, name):
    """The index record of a pandas series ``obj`` (``name``: the argument, for
    errors). Raises ValueError for a DatetimeIndex without a regular frequency."""
    pd = _pd()
    idx = obj.index
    rec = {"kind": "position", "last": None, "freq": None, "tz": None, "step": 1,
           "index_name": _json_label(idx.name)}
    if isinstance(obj, pd.DataFrame):
        cols = [_json_label(c) for c in obj.columns]
        rec["columns"] = cols if all(c is not None for c in cols) else None
        rec["series_name"] = None
    else:
        rec["columns"] = None
        rec["series_name"] = _json_label(obj.name)
    if isinstance(idx, pd.DatetimeIndex):
        freq = idx.freq if idx.freq is not None else pd.DatetimeIndex(idx, freq="infer").freq
        if freq is None:
            raise ValueError(
                f"{name} has a DatetimeIndex without a regular frequency (pandas could not "
                "infer one): give it one, e.g. y.asfreq('MS'), so forecasts can be labelled "
                "with the dates that follow")
        rec.update(kind="datetime", last=idx[-1].isoformat(), freq=freq.freqstr,
                   tz=None if idx.tz is None else str(idx.tz))
    elif isinstance(idx, pd.PeriodIndex):
        rec.update(kind="period", last=str(idx[-1]), freq=idx.freqstr)
    elif idx.dtype.kind in "iu" and len(idx) > 0:
        values = np.asarray(idx, dtype=np.int64)
        steps = np.diff(values)
        step = int(steps[0]) if steps.size else 1
        if step > 0 and np.all(steps == step):
            rec.update(kind="integer", last=int(values[-1]), step=step)
    if rec["kind"] == "position":
        rec["last"] = len(idx) - 1
    return rec


def check_record(rec):
    """A record read from a model file: the shape of a dict index_record returns."""
    keys = {"kind", "last", "freq", "tz", "step", "index_name", "columns", "series_name"}
    if not isinstance(rec, dict) or set(rec) != keys:
        raise ValueError("fitted index must be null or an index record")
    kind = rec["kind"]
    ok = kind in ("datetime", "period", "integer", "position")
    if kind in ("datetime", "period"):
        ok = ok and isinstance(rec["last"], str) and isinstance(rec["freq"], str)
    else:
        ok = ok and type(rec["last"]) is int and type(rec["step"]) is int and rec["step"] > 0
    ok = ok and (rec["tz"] is None or isinstance(rec["tz"], str))
    cols = rec["columns"]
    ok = ok and (cols is None or (isinstance(cols, list) and all(
        isinstance(c, str) or type(c) is int for c in cols)))
    for key in ("series_name", "index_name"):
        v = rec[key]
        ok = ok and (v is None or isinstance(v, str) or type(v) is int)
    if not ok:
        raise ValueError("fitted index record is malformed")
    return rec


def forecast_index(rec, n, skip=0):
    """The labels of the ``n`` steps after ``skip`` steps past the record's last one."""
    kind = rec["kind"]
    if kind in ("integer", "position"):
        step = rec["step"]
        start = rec["last"] + step * (skip + 1)
        pd = _pd()
        return pd.RangeIndex(start, start + step * n, step, name=rec["index_name"])
    pd = _pd()
    if kind == "period":
        first = pd.Period(rec["last"], freq=rec["freq"]) + (skip + 1)
        return pd.period_range(start=first, periods=n, freq=rec["freq"], name=rec["index_name"])
    last = pd.Timestamp(rec["last"])
    if rec["tz"] is not None:
        last = last.tz_convert(rec["tz"])
    idx = pd.date_range(start=last, periods=n + skip + 1, freq=rec["freq"],
                        name=rec["index_name"])
    return idx[skip + 1:]


def check_continues(rec, obj, name):
    """A pandas ``obj`` appended to the history must start at the step after it."""
    if not is_pandas(obj) or rec["kind"] not in ("datetime", "period", "integer"):
        return
    want = forecast_index(rec, 1)[0]
    got = obj.index[0]
    if got != want:
        raise ValueError(f"{name} starts at {got!r}, but the history ends at {rec['last']!r}: "
                         f"the next step is {want!r}")


def advance(rec, obj, n):
    """The record after ``n`` more steps: read from ``obj`` when it is pandas (its
    last label), else counted on with the record's frequency."""
    rec = dict(rec)
    if obj is not None and is_pandas(obj) and rec["kind"] in ("datetime", "period", "integer"):
        last = obj.index[-1]
        rec["last"] = last.isoformat() if rec["kind"] == "datetime" else (
            str(last) if rec["kind"] == "period" else int(last))
        return rec
    if rec["kind"] in ("integer", "position"):
        rec["last"] = rec["last"] + rec["step"] * n
    else:
        rec["last"] = str(forecast_index(rec, 1, skip=n - 1)[0]) if rec["kind"] == "period" \
            else forecast_index(rec, 1, skip=n - 1)[0].isoformat()
    return rec


def wrap(values, rec, univariate, skip=0, columns=None):
    """Forecasts (n,) or (n, v) as a Series / DataFrame labelled with the steps after
    the record's last one; ``columns`` replaces the variable names (e.g. quantiles)."""
    pd = _pd()
    index = forecast_index(rec, values.shape[0], skip)
    if columns is not None:
        return pd.DataFrame(values, index=index, columns=columns)
    if univariate:
        return pd.Series(values, index=index, name=rec["series_name"])
    return pd.DataFrame(values, index=index, columns=rec["columns"])


def check_same_index(obj, other, name, other_name):
    """Covariates given as pandas next to a pandas series must share its index."""
    if is_pandas(obj) and is_pandas(other) and not obj.index.equals(other.index):
        raise ValueError(f"{name} and {other_name} are both pandas objects but their indexes "
                         f"differ: {name} runs {obj.index[0]!r}..{obj.index[-1]!r}, "
                         f"{other_name} {other.index[0]!r}..{other.index[-1]!r}; align them "
                         "(e.g. X.reindex(y.index))")
