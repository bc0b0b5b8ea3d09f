"""The mock egov portal's web site, for testers: choose a test person, fill in and sign an application,
send it through the gateway, and follow it in the personal cabinet (Kazakh, Russian, English).

``python -m mocks.portal.web --pki DIR --gateway URL --port 8700 --sender portal --password ...``
"""

from mocks.portal.web.app import create_portal_app, run_portal

__all__ = ["create_portal_app", "run_portal"]
