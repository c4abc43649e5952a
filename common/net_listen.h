/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Listening sockets for shoal's HTTP servers, named as on their command lines: "unix:PATH"
 * (a stale socket file is replaced; mode 0660) or "HOST:PORT" ("[::1]:PORT", ":PORT" for
 * every address). Non-blocking and close-on-exec, ready to hand to libmicrohttpd.
 */
#ifndef SHOAL_NET_LISTEN_H
#define SHOAL_NET_LISTEN_H

#include <stddef.h>

/* Returns the socket, or a negative errno with a message naming addr in err. */
int net_listen(const char *addr, char *err, size_t errlen);

#endif
