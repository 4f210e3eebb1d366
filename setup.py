# Copyright (c) mmext contributors. All rights reserved.
"""Build script: a normal setuptools package plus the ``mmext/.mim`` folder.

``mim train|test|run mmext`` look for ``configs/``, ``tools/`` and
``model-index.yml`` under ``mmext/.mim/`` of the installed package. They are
copied there when a wheel / sdist / regular install is built and symlinked for
``python setup.py develop`` (as mmpretrain does). An editable (PEP 660)
install leaves no ``site-packages/mmext``, so mim needs a regular install.
"""
import os
import os.path as osp
import shutil
import sys
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


if __name__ == '__main__':
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
