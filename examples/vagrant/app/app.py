# A trivial WSGI app for the examples: edit MESSAGE and ping netreload.
MESSAGE = "hello from examples/app.py"


def application(env, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [MESSAGE.encode() + b"\n"]
