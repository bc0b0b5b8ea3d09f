"""Signature verification and signing for the gateway (XMLDSig, XAdES, WS-Security; RSA, ECDSA and GOST).

One process-wide setting lives here, because it must be in place before any certificate is read:
``cryptography`` warns (``UserWarning``) on every name attribute longer than its X.520 bound, counting UTF-8
bytes where X.520 counts characters. NCA's own CA names are 44-45 Cyrillic characters, 69-71 bytes
("ҰЛТТЫҚ КУӘЛАНДЫРУШЫ ОРТАЛЫҚ (GOST) TEST 2022"), so every real NCA certificate warned on every name access,
and under ``-W error`` / ``PYTHONWARNINGS=error`` reading one raised. We only read names, never issue them, so
the warning says nothing about a certificate's validity (tests/test_kalkan_vectors.py).
"""

import warnings

warnings.filterwarnings("ignore", message="Attribute's length must be", category=UserWarning)
