"""streamer-local: API Gateway WebSockets, its @connections API, Lambda and DynamoDB
(with Streams) on a laptop, for any Chalice app.

The emulator is this package; it imports no application code but the app it serves.
``streamer-local`` (cli.py) serves the Chalice project in the current directory;
Streamer's own ``python -m local`` builds on the same pieces.
"""
