"""Checks a built documentation site: its API reference has an entry for every public name.

mkdocs' strict build already fails on a broken link or reference; this checks what it cannot
see, a public name (a module's `__all__`) the reference leaves out. mkdocs.yml runs it as a
hook after every build (`on_post_build`; in the build's process, which has imported the
package already), and it runs on a built site by hand:

    python tools/check_site.py SITE_DIR
"""

import importlib
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def api_modules():
    """The modules the reference's pages show (`::: module` lines of docs/api/*.md)."""
    folder = os.path.join(ROOT, "docs", "api")
    modules = []
    for page in sorted(os.listdir(folder)):
        with open(os.path.join(folder, page)) as file:
            modules += [(page, name) for name in re.findall(r"^::: ([\w.]+)$", file.read(), re.M)]
    return modules


def public_names(module):
    """The names of `module`'s `__all__` (some are built from the code: it is imported)."""
    return list(getattr(importlib.import_module(module), "__all__", []))


def missing(site):
    """`module.name` of every public name without an entry on its module's reference page."""
    absent = []
    for page, module in api_modules():
        with open(os.path.join(site, "api", page[:-len(".md")], "index.html")) as file:
            html = file.read()
        absent += [f"{module}.{name}" for name in public_names(module)
                   if f'id="{module}.{name}"' not in html]
    return absent


def on_post_build(config, **kwargs):
    """mkdocs' hook: fails the build when the reference lacks a public name."""
    from mkdocs.exceptions import PluginError

    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    absent = missing(config["site_dir"])
    if absent:
        raise PluginError(f"The API reference lacks {len(absent)} public names: "
                          f"{', '.join(absent)}")


def main(argv):
    sys.path.insert(0, ROOT)  # this checkout's keras_attn, run as a script or a module
    if len(argv) != 2:
        sys.exit(f"usage: {argv[0]} SITE_DIR")
    absent = missing(argv[1])
    if absent:
        sys.exit(f"The API reference lacks {len(absent)} public names: {', '.join(absent)}")
    print(f"API reference: every public name of {len(api_modules())} modules has an entry.")


if __name__ == "__main__":
    main(sys.argv)
