import pytest

TEMPLATE = "tests/data/site-template.tar.gz"   # or a directory, "zip://...", an FS

def rotate_logs(site):                         # the code under test, working on any FS
    for name in site.listdir("var/log"):
        site.move("var/log/" + name, "var/log/" + name + ".1")
    site.writetext("etc/rotated", "yes\n")

def test_rotate_logs(overlay_factory):
    site = overlay_factory(TEMPLATE)
    rotate_logs(site)
    changes = site.changes()
    assert changes.added == ("/etc/rotated",)
    assert changes.renamed == ("/var/log/app.log.1",)   # moved, its data still the lower's
    assert changes.deleted == ("/var/log/app.log",)

def test_the_next_test_starts_pristine(overlay_factory):
    site = overlay_factory(TEMPLATE)
    assert site.exists("var/log/app.log") and not site.exists("etc/rotated")
