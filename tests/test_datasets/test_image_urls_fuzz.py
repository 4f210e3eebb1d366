# Copyright (c) mmext contributors. All rights reserved.
"""Fuzz the two files the Conceptual Captions downloader reads: the TSV
(``read_cc_tsv``, shared with the data set) and the download log. Random
bytes, encodings, column counts, quoting and line endings give rows or one
mmext error line naming the file (and the line), never a raw traceback.
No network."""
import codecs
import csv
import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmext.datasets.conceptual_captions import read_cc_tsv
from mmext.datasets.downloaders.download_log import COLUMNS, read_download_log
from mmext.datasets.image_text import RecordError
from mmext.utils.fileio import InputFileError

MMEXT_ERRORS = (InputFileError, RecordError)
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture])

_text = st.text(
    st.characters(blacklist_categories=('Cs', )), min_size=0, max_size=30)
_field = st.one_of(_text, st.sampled_from(['"', '""', '"a\tb"', ' ', '\\']),
                   st.just('http://h/x y.png'))
_row = st.lists(_field, min_size=0, max_size=4).map('\t'.join)
_ending = st.sampled_from(['\n', '\r\n', '\r', ''])
_encoding = st.sampled_from(
    ['utf-8', 'utf-8-sig', 'utf-16', 'utf-32', 'latin-1', 'cp1252'])


def _check_error(e, path):
    msg = str(e)
    assert isinstance(e, MMEXT_ERRORS), repr(e)
    assert str(path) in msg and '\n' not in msg, msg


def _oracle(text):
    """What the reader must yield for text it can decode (as open())."""
    lines = io.StringIO(text, newline=None)
    want = []
    for no, line in enumerate(lines, 1):
        line = line.rstrip('\n')
        if not line.strip():
            continue
        fields = line.split('\t')
        if len(fields) != 2 or not all(f.strip() for f in fields):
            return want, no  # the reader must stop here with RecordError
        want.append((no, fields[0].strip(), fields[1].strip()))
    return want, None


@FUZZ
@given(rows=st.lists(st.tuples(_row, _ending), max_size=8), enc=_encoding)
def test_tsv_rows_or_one_line_error(tmp_path, rows, enc):
    path = tmp_path / 'fuzz.tsv'
    text = ''.join(r + e for r, e in rows)
    try:
        data = text.encode(enc)
    except UnicodeEncodeError:
        data = text.encode('utf-8', 'surrogatepass')
    path.write_bytes(data)
    got = []
    try:
        for row in read_cc_tsv(path):
            got.append(row)
        error = None
    except Exception as e:  # noqa: B902 (what is raised is the test)
        _check_error(e, path)
        error = e
    decodable = enc in ('utf-8', 'utf-8-sig', 'utf-16', 'utf-32') or \
        data.isascii()
    if decodable and text.encode(enc, 'ignore') == data:
        want, bad_line = _oracle(text)
        assert got == want
        if bad_line is None:
            assert error is None
        else:
            assert isinstance(error, RecordError)
            assert f'{path}:{bad_line}:' in str(error)
    elif error is not None and isinstance(error, InputFileError):
        assert 'line' in str(error)


@FUZZ
@given(
    data=st.binary(max_size=300),
    bom=st.sampled_from(
        [b'', codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF32_BE]))
def test_tsv_random_bytes(tmp_path, data, bom):
    path = tmp_path / 'fuzz.tsv'
    path.write_bytes(bom + data)
    try:
        for line, caption, url in read_cc_tsv(path):
            assert line >= 1 and caption and url
            assert '\t' not in caption + url and '\n' not in caption + url
    except Exception as e:  # noqa: B902
        _check_error(e, path)


_log_field = st.one_of(
    _text,
    st.integers(-3, 40).map(str),
    st.sampled_from(['saved', 'timeout', 'gone', '', '"', '\n', ',']))


@FUZZ
@given(
    rows=st.lists(st.lists(_log_field, min_size=0, max_size=8), max_size=6),
    junk=st.binary(max_size=20))
def test_download_log_rows_or_one_line_error(tmp_path, rows, junk):
    path = tmp_path / 'fuzz.downloads.csv'
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(COLUMNS)
    writer.writerows(rows)
    path.write_bytes(buf.getvalue().encode('utf-8', 'surrogatepass') + junk)
    try:
        records = read_download_log(str(path))
    except Exception as e:  # noqa: B902
        _check_error(e, path)
        return
    assert all(isinstance(k, int) and k >= 1 for k in records)
    assert all(r.line == k for k, r in records.items())
