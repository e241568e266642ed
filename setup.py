"""img2pose_mm: img2pose (6DoF face pose, detection and alignment) as MMDetection 3.x plugins."""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def read_requirements(name: str) -> list[str]:
    """Requirement lines of ``requirements/<name>``, following ``-r other.txt``."""
    requirements = []
    for line in (HERE / 'requirements' / name).read_text().splitlines():
        line = line.split('#')[0].strip()
        if line.startswith('-r '):
            requirements += read_requirements(line[3:].strip())
        elif line:
            requirements.append(line)
    return requirements


def sim3dr_extensions() -> list:
    """The Sim3DR rasteriser (C++ core + Cython binding), when its sources are present."""
    pyx = HERE / 'Sim3DR' / '_rasterize.pyx'
    if not pyx.exists():
        return []
    import numpy
    from Cython.Build import cythonize
    from setuptools import Extension
    ext = Extension(
        'Sim3DR._rasterize',
        sources=['Sim3DR/_rasterize.pyx', 'Sim3DR/lib/rasterize.cpp'],
        include_dirs=[numpy.get_include(), 'Sim3DR/lib'],
        language='c++',
        extra_compile_args=['-O3', '-std=c++17'],
    )
    return cythonize([ext], language_level=3, quiet=True)


version = {}
exec((HERE / 'img2pose_mm' / 'version.py').read_text(), version)

setup(
    name='img2pose_mm',
    version=version['__version__'],
    description='img2pose (CVPR 2021) 6DoF face pose estimation, detection and alignment '
                'as registered MMDetection 3.x components',
    long_description=(HERE / 'README.md').read_text() if (HERE / 'README.md').exists() else '',
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.9',
    # the two data folders are listed as packages: setuptools warns about any folder it
    # ships without one
    packages=find_packages(include=['img2pose_mm', 'img2pose_mm.*', 'Sim3DR', 'Sim3DR.*'])
    + ['img2pose_mm.structures.data', 'Sim3DR.lib'],
    package_data={'img2pose_mm.structures.data': ['*.npy', '*.npz'],
                  'Sim3DR.lib': ['*.cpp', '*.h']},
    include_package_data=True,
    # torch and mmcv are installed by tools/install (mmcv is built from source against torch)
    install_requires=read_requirements('runtime.txt'),
    extras_require={
        'tests': read_requirements('tests.txt'),
        'deploy': read_requirements('deploy.txt'),
        # detect-and-align (img2pose_mm.apis.alignment) needs nothing beyond the base
        # install (cv2, numpy); the extra exists so `pip install img2pose_mm[alignment]`,
        # the seed API's install line, installs without a warning
        'alignment': [],
    },
    ext_modules=sim3dr_extensions(),
    zip_safe=False,
)
