"""Work moto repeats on every request although its result never changes while the
process runs; done once here. Every AWS request is served in the world process, whose
GIL the data plane's event loop shares, so per-request overhead is latency there.

- moto's dispatcher finds a request's backend by listing its own package folder and
  checking each entry with ``isdir`` (some 170 system calls), twice for a request to a
  loopback address;
- ``BaseResponse.call_action`` lists the response class's methods with
  ``inspect.getmembers`` (hundreds of attributes for EC2).
"""

from __future__ import annotations

import functools

_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    from moto import backends
    from moto.core import responses

    modules = backends.list_of_moto_modules
    backends.list_of_moto_modules = functools.cache(lambda: tuple(modules()))
    # the list is only tested for membership; a tuple keeps callers from changing it
    methods = responses.method_names_from_class
    responses.method_names_from_class = functools.cache(lambda cls: tuple(methods(cls)))
    _installed = True
