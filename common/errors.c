// SPDX-License-Identifier: Apache-2.0
/* shoal_strerror(): errno's strings plus the two codes of errors.h. */
#include <string.h>

#include "errors.h"

const char *shoal_strerror(int err)
{
	if (err < 0)
		err = -err;
	switch (err) {
	case ECONFLICT:
		return "conflict: the object has been modified";
	case ECOMPACTED:
		return "revision compacted: older than the history kept";
	default:
		return strerror(err);
	}
}
