"""The chat page's fixtures are the JavaScript client's: the gateway running this app,
the relay that cuts connections, and pages in headless Chromium (``tests/clients/conftest.py``)."""

from tests.clients.conftest import gateway, new_page, proxy

__all__ = ["gateway", "new_page", "proxy"]
