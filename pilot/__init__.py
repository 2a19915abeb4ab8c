"""Standalone PanDA-style pilot.

Runs on worker nodes that only have Python 3.11 and outbound HTTP, so this
package imports nothing outside the standard library (and no Django).
"""

__version__ = "0.1.0"
