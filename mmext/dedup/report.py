# Copyright (c) mmext contributors. All rights reserved.
"""Evidence and split files written from duplicate pairs.

* ``pairs.csv`` / ``pairs.json``: every pair with distance and variant;
* ``report.html``: self-contained (thumbnails embedded as base64 JPEG), so
  it can be attached to an issue or a paper's supplement as one file;
* ``pairs.png``: a contact sheet, each pair side by side with its distance;
* ``exclude.txt``: the training images to drop, one path per line relative
  to the data set's ``data_root`` with '/' separators, ``#`` comments
  (command, date, method, threshold), blank lines ignored — the format the
  Flowers-102 no-leak data set reads;
* ``skipped.csv``: inputs without a hash and why.
"""
import base64
import csv
import html
import io
import json
import os
import os.path as osp

import numpy as np
from PIL import Image, ImageDraw

__all__ = ['write_pairs_csv', 'write_pairs_json', 'write_skipped_csv',
           'write_exclude_file', 'read_exclude_file', 'relative_posix',
           'write_html_report', 'write_contact_sheet']


def relative_posix(path, root):
    """``path`` relative to ``root`` with '/' separators (as given if
    ``root`` is None)."""
    if root is None:
        return str(path).replace(os.sep, '/')
    rel = osp.relpath(osp.abspath(path), osp.abspath(root))
    return rel.replace(os.sep, '/')


def write_pairs_csv(pairs, out_file, names=('query', 'ref')):
    """One row per pair: ``<names[0]>_path, <names[1]>_path, distance,
    variant``."""
    with open(out_file, 'w', newline='', encoding='utf-8') as f:
        writer = csv.writer(f)
        writer.writerow([f'{names[0]}_path', f'{names[1]}_path', 'distance',
                         'variant'])
        for p in pairs:
            writer.writerow([p.query_path, p.ref_path, p.distance, p.variant])


def write_pairs_json(pairs, out_file, meta=None, names=('query', 'ref')):
    """``{"meta": {...}, "pairs": [{<names[0]>_path, ..., distance,
    variant}]}``."""
    rows = [{
        f'{names[0]}_path': p.query_path,
        f'{names[1]}_path': p.ref_path,
        'distance': p.distance,
        'variant': p.variant
    } for p in pairs]
    with open(out_file, 'w', encoding='utf-8') as f:
        json.dump({'meta': meta or {}, 'pairs': rows}, f, indent=1)


def write_skipped_csv(skipped_by_set, out_file):
    """``skipped_by_set``: ``{set_name: [(path, reason), ...]}``."""
    with open(out_file, 'w', newline='', encoding='utf-8') as f:
        writer = csv.writer(f)
        writer.writerow(['set', 'path', 'reason'])
        for name, skipped in skipped_by_set.items():
            for path, reason in skipped:
                writer.writerow([name, path, reason])


def write_exclude_file(paths, out_file, data_root=None, comments=()):
    """Write the exclude file; returns the relative paths written.

    Args:
        paths (Iterable[str]): Images to exclude (duplicates are written
            once, in first-seen order).
        out_file (str): Output text file (UTF-8).
        data_root (str | None): Paths are written relative to it.
        comments (Iterable[str]): Header lines, written as ``# ...``.
    """
    rel = list(dict.fromkeys(relative_posix(p, data_root) for p in paths))
    with open(out_file, 'w', encoding='utf-8', newline='\n') as f:
        for line in comments:
            for part in str(line).splitlines():
                f.write(f'# {part}\n')
        for r in rel:
            if r.startswith('#') or '\n' in r:
                raise ValueError(f'cannot write {r!r} to an exclude file: a '
                                 'path starting with "#" or holding a newline'
                                 ' would be misread; rename the file')
            f.write(r + '\n')
    return rel


def read_exclude_file(path):
    """The paths of an exclude file (comments and blank lines dropped)."""
    with open(path, encoding='utf-8') as f:
        lines = (line.strip() for line in f)
        return [line for line in lines if line and not line.startswith('#')]


def _thumbnail(path, size):
    """An RGB thumbnail; a grey tile when the file cannot be shown."""
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ('I', 'F') or img.mode.startswith('I;16'):
                from .hashing import _to_8bit
                img = _to_8bit(img)
            img = img.convert('RGB')
            img.thumbnail((size, size))
            return img
    except Exception:
        return Image.new('RGB', (size, size), (128, 128, 128))


def _data_uri(img):
    buf = io.BytesIO()
    img.save(buf, 'JPEG', quality=85)
    return 'data:image/jpeg;base64,' + base64.b64encode(
        buf.getvalue()).decode('ascii')


def write_html_report(pairs, out_file, meta=None, names=('query', 'ref'),
                      thumb_size=160, max_pairs=1000):
    """A self-contained HTML page: summary, then one row per pair with both
    thumbnails (base64), paths, distance and variant."""
    meta = meta or {}
    shown = pairs[:max_pairs]
    rows = []
    for k, p in enumerate(shown):
        qa = _data_uri(_thumbnail(p.query_path, thumb_size))
        ra = _data_uri(_thumbnail(p.ref_path, thumb_size))
        rows.append(
            f'<tr><td>{k + 1}</td><td><img src="{qa}"><br>'
            f'{html.escape(p.query_path)}</td><td><img src="{ra}"><br>'
            f'{html.escape(p.ref_path)}</td><td>{p.distance}</td>'
            f'<td>{p.variant}</td></tr>')
    summary = ''.join(f'<li><b>{html.escape(str(k))}</b>: '
                      f'{html.escape(str(v))}</li>' for k, v in meta.items())
    more = (f'<p>Showing {len(shown)} of {len(pairs)} pairs; all are in '
            'pairs.csv.</p>' if len(pairs) > len(shown) else '')
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Duplicate pairs</title>
<style>body{{font-family:sans-serif}} td{{vertical-align:top;padding:4px;
font-size:12px;border-bottom:1px solid #ccc}} img{{max-width:{thumb_size}px}}
</style></head><body>
<h1>Duplicate pairs ({len(pairs)})</h1><ul>{summary}</ul>{more}
<table><tr><th>#</th><th>{html.escape(names[0])}</th>
<th>{html.escape(names[1])}</th><th>Hamming distance</th><th>variant</th></tr>
{''.join(rows)}</table></body></html>
"""
    with open(out_file, 'w', encoding='utf-8') as f:
        f.write(page)


def write_contact_sheet(pairs, out_file, thumb_size=128, max_pairs=200,
                        names=('query', 'ref')):
    """A PNG with one row per pair: both thumbnails and ``d=<distance>
    (<variant>)``. At most ``max_pairs`` rows (the header says so)."""
    shown = pairs[:max_pairs]
    label_w, head_h, pad = 170, 24, 4
    row_h = thumb_size + 2 * pad
    width = 2 * (thumb_size + 2 * pad) + label_w
    height = head_h + max(1, len(shown)) * row_h
    sheet = Image.new('RGB', (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    head = f'{names[0]} | {names[1]} | {len(pairs)} pairs'
    if len(pairs) > len(shown):
        head += f' (first {len(shown)})'
    draw.text((pad, pad), head, fill=(0, 0, 0))
    if not shown:
        draw.text((pad, head_h + pad), 'no pairs within the threshold',
                  fill=(0, 0, 0))
    for k, p in enumerate(shown):
        y = head_h + k * row_h + pad
        for col, path in enumerate((p.query_path, p.ref_path)):
            tile = _thumbnail(path, thumb_size)
            x = pad + col * (thumb_size + 2 * pad)
            sheet.paste(tile, (x + (thumb_size - tile.width) // 2,
                               y + (thumb_size - tile.height) // 2))
        x = 2 * (thumb_size + 2 * pad) + pad
        draw.text((x, y), f'd={p.distance} ({p.variant})', fill=(200, 0, 0))
        draw.text((x, y + 16), osp.basename(p.query_path)[:26],
                  fill=(0, 0, 0))
        draw.text((x, y + 32), osp.basename(p.ref_path)[:26], fill=(0, 0, 0))
    sheet.save(out_file)
    return np.asarray(sheet).shape
