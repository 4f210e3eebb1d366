# Copyright (c) mmext contributors. All rights reserved.
"""Build script: a normal setuptools package plus the ``mmext/.mim`` folder.

``mim train|test|run mmext`` look for ``configs/``, ``tools/`` and
``model-index.yml`` under ``mmext/.mim/`` of the installed package. They are
copied there when a wheel / sdist / regular install is built and symlinked for
an editable build (as mmpretrain does).

mim finds the package at ``get_distribution('mmext').location + '/mmext'``.
An editable (PEP 660) install puts the metadata in site-packages but no
``site-packages/mmext`` (also with ``editable_mode=compat``, which only adds
the checkout to ``sys.path``), so ``mim train mmext ...`` runs a
``site-packages/mmext/tools/train.py`` that does not exist.
``python setup.py mim_link`` (run by ``make setup`` after ``pip install -e``)
makes ``site-packages/mmext`` a symlink to the checkout's ``mmext/``.
"""
import os
import os.path as osp
import shutil
import sys
import sysconfig
import warnings
from setuptools import find_packages, setup

MIM_FILES = ('configs', 'tools', 'model-index.yml')


def readme():
    with open('README.md', encoding='utf-8') as f:
        return f.read()


def get_version():
    scope = {}
    with open(osp.join('mmext', 'version.py'), encoding='utf-8') as f:
        exec(compile(f.read(), 'mmext/version.py', 'exec'), scope)
    return scope['__version__']


def parse_requirements(fname):
    """Requirement lines of ``requirements/<fname>`` (comments dropped)."""
    reqs = []
    with open(osp.join('requirements', fname), encoding='utf-8') as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line:
                reqs.append(line)
    return reqs


def add_mim_extension():
    """Copy (or, for ``develop``, symlink) the mim files into mmext/.mim."""
    if 'develop' in sys.argv or 'editable_wheel' in sys.argv:
        mode = 'symlink'
    elif any(
            cmd in sys.argv for cmd in ('sdist', 'bdist_wheel', 'install',
                                        'egg_info', 'build', 'build_py')):
        mode = 'copy'
    else:
        return
    here = osp.dirname(osp.abspath(__file__))
    mim_path = osp.join(here, 'mmext', '.mim')
    os.makedirs(mim_path, exist_ok=True)
    # a previous build's copy would otherwise ship deleted/renamed configs
    shutil.rmtree(
        osp.join(here, 'build', 'lib', 'mmext', '.mim'), ignore_errors=True)
    for name in MIM_FILES:
        src = osp.join(here, name)
        dst = osp.join(mim_path, name)
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if not osp.exists(src):
            warnings.warn(f'mim extension: {src} is missing')
            continue
        if mode == 'symlink':
            os.symlink(osp.relpath(src, mim_path), dst)
        elif osp.isdir(src):
            shutil.copytree(
                src, dst, ignore=shutil.ignore_patterns('__pycache__'))
        else:
            shutil.copyfile(src, dst)


def link_for_mim(site_dir=None):
    """Make ``<site_dir>/mmext`` a symlink to this checkout's ``mmext/``.

    For an editable install, so mim's ``location/mmext`` exists; ``import
    mmext`` then reads the same files either way. A regular install there
    (a real folder) is left alone.

    Args:
        site_dir (str, optional): Defaults to this interpreter's purelib.

    Returns:
        str: What was done, one line.
    """
    site_dir = site_dir or sysconfig.get_paths()['purelib']
    target = osp.join(osp.dirname(osp.abspath(__file__)), 'mmext')
    link = osp.join(site_dir, 'mmext')
    if osp.islink(link):
        if osp.realpath(link) == osp.realpath(target):
            return f'mim link: {link} -> {target} (already there)'
        os.remove(link)  # an older checkout's
    elif osp.exists(link):
        return f'mim link: {link} is a regular install; left as it is'
    os.symlink(target, link)
    return f'mim link: {link} -> {target}'


if __name__ == '__main__':
    if sys.argv[1:] == ['mim_link']:
        print(link_for_mim())
        sys.exit(0)
    add_mim_extension()
    setup(
        name='mmext',
        version=get_version(),
        description='OpenMMLab extension: TRAR-ViT, leakage-free Flowers '
        'fine-tuning, R2Gen report generation on mmpretrain 1.2',
        long_description=readme(),
        long_description_content_type='text/markdown',
        license='Apache License 2.0',
        python_requires='>=3.9',
        packages=find_packages(include=('mmext', 'mmext.*')),
        include_package_data=True,
        package_data={'mmext': ['.mim/**/*', '.mim/*']},
        install_requires=parse_requirements('runtime.txt'),
        extras_require={
            'mim': parse_requirements('mim.txt'),
            'tests': parse_requirements('tests.txt'),
            'optional': parse_requirements('optional.txt'),
        },
        zip_safe=False)
