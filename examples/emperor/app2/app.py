# Vassal app2: edit and run build/netreload ping 127.0.0.1:9102
MESSAGE = "app2 v1"


def application(env, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [MESSAGE.encode() + b"\n"]
