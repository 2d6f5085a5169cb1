package haproxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"
)

// HAProxy lets one operation at a time at its certificates: a command
// that reads them (show ssl cert, show ssl sni, acme status) tries their
// lock, and when another operation holds it (a commit of "set ssl cert",
// "update ssl ocsp-response", an ACME renewal installing its
// certificate, another connection's dump of them) refuses at once:
//
//	Can't show!
//	Operations on certificates are currently locked!
//
// ("Can't list SNIs" for show ssl sni), while acme status answers
// nothing at all. Such a command is asked again a moment later, up to
// certLockTries times, and only then reported; the input's own commands
// that take the lock are asked one after the other on the certificates'
// connection, never beside each other.

// certsLockedLine is HAProxy's reason when another operation holds the
// certificates.
var certsLockedLine = []byte("Operations on certificates are currently locked!")

// errCertsLocked is a command's answer when another operation held the
// certificates.
var errCertsLocked = errors.New("HAProxy's certificates were locked by another operation (an update or renewal under way)")

// certLockTries is how many times a command refused for the lock is
// asked; certLockPause the pause before the second try, doubled for
// each next one.
const (
	certLockTries = 4
	certLockPause = 50 * time.Millisecond
)

// certLockPauseBefore is the pause before try (2, 3, ...).
func certLockPauseBefore(try int) time.Duration { return certLockPause << (try - 2) }

// maxRefusalLines bounds the lines of a refusal read.
const maxRefusalLines = 20

// readCertRefusal reads the answer at lr when it is HAProxy's refusal to
// show certificates ("Can't ..." and why): errCertsLocked when another
// operation held them, else an error quoting it. Any other answer is
// left unread, and refused is false.
func readCertRefusal(lr *lineReader) (refused bool, err error) {
	line, complete, err := lr.next()
	if err != nil || !complete || !bytes.HasPrefix(line, []byte("Can't ")) {
		if err == nil {
			lr.unread()
		}
		return false, nil
	}
	said := string(clip(line, 100))
	locked := false
	for range maxRefusalLines {
		line, complete, err := lr.next()
		if err == nil && !complete {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return true, fmt.Errorf("HAProxy's refusal %q cut short: %w", said, err)
		}
		if len(line) == 0 {
			if locked {
				return true, errCertsLocked
			}
			return true, fmt.Errorf("HAProxy says %q", said)
		}
		locked = locked || bytes.Equal(line, certsLockedLine)
	}
	return true, fmt.Errorf("HAProxy's refusal %q: no end within %d lines", said, maxRefusalLines)
}
