package deploy_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// dockerfile is the part of a Dockerfile the checks read.
type dockerfile struct {
	Args   map[string]string // global ARG defaults (before the first FROM)
	Stages []*stage
}

// stage is one FROM … section.
type stage struct {
	From, Name string
	Runs       []string // RUN commands, continuation lines joined
	User       string
	Expose     []string
	Entrypoint []string // exec form only
	Cmd        []string // exec form only
	Copies     []string
}

// final returns the last stage, the image's.
func (d *dockerfile) final() *stage {
	if len(d.Stages) == 0 {
		return &stage{}
	}
	return d.Stages[len(d.Stages)-1]
}

// expand replaces ${NAME} and $NAME with global ARG defaults.
func (d *dockerfile) expand(s string) string {
	return os.Expand(s, func(name string) string { return d.Args[name] })
}

// parseDockerfile reads the instructions the checks need: ARG, FROM, RUN,
// USER, EXPOSE, ENTRYPOINT, CMD, COPY. Others are ignored.
func parseDockerfile(data []byte) (*dockerfile, error) {
	d := &dockerfile{Args: map[string]string{}}
	var cur *stage
	sc := bufio.NewScanner(bytes.NewReader(data))
	var logical strings.Builder
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(text, "#") || (text == "" && logical.Len() == 0) {
			continue
		}
		if cont, ok := strings.CutSuffix(text, "\\"); ok {
			logical.WriteString(cont + " ")
			continue
		}
		logical.WriteString(text)
		instr := logical.String()
		logical.Reset()
		keyword, rest, _ := strings.Cut(instr, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(keyword) {
		case "ARG":
			if cur == nil {
				name, value, _ := strings.Cut(rest, "=")
				d.Args[name] = strings.Trim(value, `"`)
			}
		case "FROM":
			f := strings.Fields(rest)
			cur = &stage{From: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				cur.Name = f[2]
			}
			d.Stages = append(d.Stages, cur)
		default:
			if cur == nil {
				return nil, fmt.Errorf("Dockerfile:%d: %s before FROM", line, keyword)
			}
		}
		switch strings.ToUpper(keyword) {
		case "RUN":
			cur.Runs = append(cur.Runs, rest)
		case "USER":
			cur.User = rest
		case "EXPOSE":
			cur.Expose = strings.Fields(rest)
		case "COPY":
			cur.Copies = append(cur.Copies, rest)
		case "ENTRYPOINT", "CMD":
			var argv []string
			if err := json.Unmarshal([]byte(rest), &argv); err != nil {
				return nil, fmt.Errorf("Dockerfile:%d: %s must be in exec (JSON) form: %v", line, keyword, err)
			}
			if strings.EqualFold(keyword, "ENTRYPOINT") {
				cur.Entrypoint = argv
			} else {
				cur.Cmd = argv
			}
		}
	}
	return d, sc.Err()
}

var goLineRE = regexp.MustCompile(`(?m)^go\s+(\S+)\s*$`)

// goModVersion returns the go line of a go.mod file.
func goModVersion(gomod []byte) (string, error) {
	m := goLineRE.FindSubmatch(gomod)
	if m == nil {
		return "", fmt.Errorf("go.mod has no go line")
	}
	return string(m[1]), nil
}
