"""One module per Lambda entry point of ``app.py``: what that handler does.

    connect.py      $connect     authenticate, write the connection
    disconnect.py   $disconnect  remove it, its subscriptions, cancel its requests
    message.py      $default     parse, route on ``action``, reply
    publish.py      publish      backend push to a channel or a user
    fanout.py       fanout       a worker's share of a large channel's delivery
    process.py      process      the requests table's stream: run the work

Each takes the process's :class:`~chalicelib.services.Services` and the raw event.
"""
