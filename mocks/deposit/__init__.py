"""The e-government ICT infrastructure operator's software deposit back-end (mock): ``create_deposit_app``."""

from mocks.deposit.app import create_deposit_app

__all__ = ["create_deposit_app"]
