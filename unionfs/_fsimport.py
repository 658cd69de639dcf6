"""Import PyFilesystem2 without the ``pkg_resources`` deprecation noise.

``fs`` 2.4.16 calls ``pkg_resources.declare_namespace`` at import time. Setuptools
67 to 81 warn about that (81 with a ``UserWarning`` that is shown by default) and
setuptools 82 removed ``pkg_resources`` altogether. ``setup.cfg`` therefore installs the
maintained fork ``fs-next`` (the same ``fs`` package without ``pkg_resources``) on Python
3.10+, and ``fs`` 2.4.16 with ``setuptools<82`` only before 3.10, where this matters.
"""

import warnings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r".*pkg_resources.*")
    warnings.filterwarnings("ignore", message=r".*declare_namespace.*")
    import fs  # noqa: F401
    import fs.opener  # noqa: F401  (registers the namespace and the opener registry)
