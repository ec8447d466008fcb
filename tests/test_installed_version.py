"""extras.installed_version: a package's version from its wheel metadata, without importing the
package or importlib.metadata (check prints a warning when FlashInfer differs from its tables)."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _site(tmp_path, dist_dir="fake_dist-1.2.3.post1.dist-info", metadata="Metadata-Version: 2.1\nName: fake-dist\n"
          "Version: 1.2.3.post1\n\nlong description\nVersion: 9.9\n"):
    pkg = tmp_path / "fakepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("raise RuntimeError('imported!')\n")  # must never be imported
    if dist_dir:
        (tmp_path / dist_dir).mkdir()
        if metadata is not None:
            (tmp_path / dist_dir / "METADATA").write_text(metadata)
    return tmp_path


def _run(site, dist="fake-dist", module="fakepkg"):
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(site)!r})
        from moe_inspect.extras import installed_version
        print(installed_version({dist!r}, {module!r}))
        print("importlib.metadata" in sys.modules, "fakepkg" in sys.modules)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout.split("\n")[:2]


def test_version_from_the_wheel_metadata_without_importing_anything(tmp_path):
    version, imported = _run(_site(tmp_path))
    assert version == "1.2.3.post1"  # the header, not the "Version:" line in the description body
    assert imported == "False False"


def test_missing_module_is_none(tmp_path):
    version, _ = _run(_site(tmp_path), module="no_such_module_here")
    assert version == "None"


def test_module_without_metadata_is_none(tmp_path):
    version, imported = _run(_site(tmp_path, dist_dir=None))
    assert version == "None" and imported == "True False"  # asked importlib.metadata, which knows nothing


def test_dist_info_without_metadata_falls_back(tmp_path):
    version, _ = _run(_site(tmp_path, metadata=None))
    assert version == "None"


def test_flashinfer_agrees_with_importlib_metadata():
    from importlib.metadata import PackageNotFoundError, version

    from moe_inspect.extras import installed_flashinfer_version

    try:
        expected = version("flashinfer-python")
    except PackageNotFoundError:
        expected = None
    assert installed_flashinfer_version() == expected
