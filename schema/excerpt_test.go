package schema_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/schema"
)

// TestErrorsQuoteOnlyExcerpts: whatever a file holds, an error quotes at
// most a short escaped beginning of the value it failed on; a file that is
// one bare value (a secret, /etc/passwd) is not quoted at all.
func TestErrorsQuoteOnlyExcerpts(t *testing.T) {
	const secret = "hunter2-0123456789abcdefghijklmnopqrstuvwxyz"
	cases := map[string]string{
		"password.yaml": secret + "\n",
		"passwd.yaml":   "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n",
		"field.yaml":    "apiVersion: tinkerbell.org/v1alpha1\nkind: Hardware\nmetadata: {name: x}\nspec: {interfaces: " + secret + "}\n",
		"number.yaml":   "apiVersion: tinkerbell.org/v1alpha1\nkind: Hardware\nmetadata: {name: x}\nspec: {userData: 1" + strings.Repeat("0", 60) + "}\n",
		"kind.yaml":     "apiVersion: tinkerbell.org/v1alpha1\nkind: " + secret + "\nmetadata: {name: x}\n",
		"secret.cue":    "x: " + strings.ReplaceAll(secret, "-", "_") + "\n",
		"controls.yaml": "apiVersion: tinkerbell.org/v1alpha1\nkind: Hardware\nmetadata: {name: x}\nspec: {interfaces: \"\\e[31m" + secret + "\"}\n",
		"template.yaml": "apiVersion: tinkerbell.org/v1alpha1\nkind: Template\nmetadata: {name: t}\nspec:\n  data: |\n    name: {{ " + strings.ReplaceAll(secret, "-", "_") + " }}\n",
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := schema.NewLoader().Load(context.Background(), fstest.MapFS{name: {Data: []byte(content)}})
			var list schema.ErrorList
			require.True(t, errors.As(err, &list), "%v", err)
			for _, e := range list {
				require.NotContains(t, e.Message, secret[:30], "at most an excerpt of the value")
				require.NotContains(t, e.Message, "\x1b", "control characters are escaped")
				require.NotContains(t, e.Message, "daemon", "never the next line")
				if name == "password.yaml" || name == "passwd.yaml" {
					require.NotContains(t, e.Message, "hunter2")
					require.NotContains(t, e.Message, "root:")
				}
			}
		})
	}
}
