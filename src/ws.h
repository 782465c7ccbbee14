/* ws.h - WebSocket (RFC 6455) on top of wslay: the opening handshake, our own
 * encoder for outgoing data frames (so a broadcast frame is encoded once and
 * shared), and a session that turns received bytes into messages. No socket
 * I/O happens here: bytes come in through ws_session_feed and leave through
 * the write callback, which is what the unit tests drive. */
#ifndef LP_WS_H
#define LP_WS_H

#include "buf.h"
#include "http.h"
#include <stdbool.h>
#include <wslay/wslay.h>

enum { WS_TEXT = 1, WS_BINARY = 2, WS_CLOSE = 8, WS_PING = 9, WS_PONG = 10 };

/* Checks an upgrade request. Returns 0, or the HTTP status to answer with
 * (400/426) and sets *why. */
int ws_check_upgrade(const http_request *req, const char **why);
/* Fills out[29] with Sec-WebSocket-Accept for the client's key. */
void ws_accept_key(const char *key, char out[29]);
/* The 101 response for req (selecting the first offered subprotocol, so
 * strict clients do not fail); node: an x-luaparty-node header, or NULL. */
chunk *ws_handshake_response(const http_request *req, const char *node);

/* An unmasked server frame (FIN set) holding payload; chunk->opcode and
 * chunk_payload() give the message back to in-process peers. */
chunk *ws_msg_new(int opcode, const void *payload, size_t len);

typedef struct ws_session ws_session;
typedef struct ws_events {
    /* A complete text or binary message. */
    void (*on_message)(void *ud, int opcode, const uint8_t *data, size_t len);
    /* Bytes wslay wants on the wire (control frames: pong, close). */
    void (*on_write)(void *ud, const uint8_t *data, size_t len);
} ws_events;

struct ws_session {
    wslay_event_context_ptr ctx;   /* NULL while parked (see ws.c) */
    const ws_events *ev;
    void *ud;
    size_t max_message;
    const uint8_t *in;
    size_t in_len;
    int close_code;          /* from the peer's close frame, 0 if none */
    char *close_reason;      /* the reason in it, if any (NUL-terminated copy) */
    bool protocol_error;     /* wslay rejected a frame */
    /* where the incoming byte stream is, frame-wise (to know when parking is safe) */
    uint8_t hdr[14];
    size_t hdr_len;          /* header bytes of the current frame seen so far */
    uint64_t payload_left;   /* payload bytes of the current frame still to come */
    bool in_fragments;       /* a fragmented data message is in progress */
    uint64_t announced;      /* payload bytes its headers announced for that message */
    bool refused;            /* a frame header was refused (1002/1009): input is ignored */
    /* The data message being received: wslay does not buffer it (ws.c). */
    const uint8_t *whole;    /* a message that came in one piece: wslay's bytes */
    size_t whole_len;
    bool has_whole;
    bool frame_fin;          /* the data frame being received ends its message */
    bool in_ctrl;            /* the frame being received is a control frame */
    uint64_t frame_len;      /* payload length of the data frame being received */
    uint64_t msg_len;        /* payload bytes of the message announced so far */
    buf parts;               /* a message in more than one piece, so far */
};

int ws_session_init(ws_session *s, size_t max_message, const ws_events *ev, void *ud);
void ws_session_free(ws_session *s);
/* Processes received bytes; returns 0 or -1 when the session failed hard. */
int ws_session_feed(ws_session *s, const uint8_t *data, size_t len);
/* Queues a close frame (once) and flushes it to on_write. */
void ws_session_close(ws_session *s, int code, const char *reason, size_t len);
/* True once both sides are done (close sent and received, or failure). */
bool ws_session_finished(const ws_session *s);
/* Why we closed with a protocol error code, for onError. */
const char *ws_close_reason(int code);
/* Frees the wslay context if the connection sits between messages (no
 * partial frame, no fragmented message, no close under way); the next byte
 * or call recreates it. An idle connection then costs ~9 KB less. */
void ws_session_park(ws_session *s);
/* The body of a wslay recv callback reading from a (pointer, length) pair
 * that the caller set before wslay_event_recv: copies what is there, or
 * says WOULDBLOCK. Shared by the server session and the outbound client. */
ssize_t ws_recv_from(wslay_event_context_ptr ctx, const uint8_t **in, size_t *in_len, uint8_t *data, size_t len);
/* Queues a ping (the peer's pong proves it is alive). */
void ws_session_ping(ws_session *s);
bool ws_session_close_sent(const ws_session *s);

#endif
