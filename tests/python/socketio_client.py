"""python-socketio's client as an integrator's bot would use it, for tests/interop_python.rs.

Connects with the session cookie (path /ws), joins a chat asking for an acknowledgement, says
`ready`, waits for one serverMessage, disconnects. One JSON line per step on stdout.

usage: python socketio_client.py URL COOKIE CHAT_ID TRANSPORTS   (TRANSPORTS: websocket,polling)
"""

import json
import sys
import threading

import socketio


def say(**step):
    print(json.dumps(step), flush=True)


def main():
    url, cookie, chat_id, transports = sys.argv[1:5]
    client = socketio.Client(reconnection=False)
    received = threading.Event()

    @client.on("serverMessage")
    def on_message(message):
        say(event="serverMessage", message=message)
        received.set()

    client.connect(
        url,
        headers={"Cookie": cookie},
        transports=transports.split(","),
        socketio_path="/ws",
        wait_timeout=10,
    )
    say(event="connect", transport=client.transport(), sid=client.get_sid())
    ack = client.call("clientJoinRoom", {"chat_id": chat_id}, timeout=5)
    say(event="join_ack", ack=ack)
    say(event="ready")
    if not received.wait(15):
        say(event="timeout")
        client.disconnect()
        return 1
    client.disconnect()
    say(event="disconnected", connected=client.connected)
    return 0


if __name__ == "__main__":
    sys.exit(main())
