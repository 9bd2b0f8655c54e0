package scoring

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
)

// Model scores a lead. Implementations call a language model (or, by
// default, compute the score locally: Fake). Score must be safe for
// concurrent use; an error fails the job's attempt, which is retried.
type Model interface {
	// Name identifies the model in the ledger and in the price list, for
	// example "fake-scorer-v1". At most 128 characters.
	Name() string
	// Score answers for one lead.
	Score(ctx context.Context, in Input) (Result, error)
}

// Input is what a model sees of a lead. Its Prompt is the model's whole
// input, so two leads with the same Input get the same answer and the
// second is a cache hit.
type Input struct {
	Name    string `json:"name"`
	Email   string `json:"email,omitempty"`
	Company string `json:"company,omitempty"`
	Source  string `json:"source,omitempty"`
	Notes   string `json:"notes,omitempty"`
}

// Prompt renders the input as the text a model reads.
func (in Input) Prompt() string {
	var b strings.Builder
	b.WriteString("Score this sales lead from 0 to 100 and say why.\n")
	for _, f := range [][2]string{{"Name", in.Name}, {"Email", in.Email}, {"Company", in.Company}, {"Source", in.Source}, {"Notes", in.Notes}} {
		if f[1] != "" {
			fmt.Fprintf(&b, "%s: %s\n", f[0], f[1])
		}
	}
	return b.String()
}

// Hash is the cache key of the input for model: hex SHA-256 over the
// model's name and the prompt.
func (in Input) Hash(model string) string {
	h := sha256.New()
	h.Write([]byte(model))
	h.Write([]byte{0})
	h.Write([]byte(in.Prompt()))
	return hex.EncodeToString(h.Sum(nil))
}

// Result is a model's answer and what it consumed.
type Result struct {
	// Score is from 0 (no chance) to 100.
	Score int `json:"score"`
	// Reason explains the score in a sentence or two.
	Reason string `json:"reason"`
	// TokensIn and TokensOut are the tokens the call was billed for.
	TokensIn  int `json:"tokens_in"`
	TokensOut int `json:"tokens_out"`
}

func (r Result) validate() error {
	if r.Score < 0 || r.Score > 100 || r.TokensIn < 0 || r.TokensOut < 0 {
		return fmt.Errorf("scoring: model answered out of range: score %d, tokens %d in, %d out", r.Score, r.TokensIn, r.TokensOut)
	}
	return nil
}

// FakeModelName is the name of the default model, Fake.
const FakeModelName = "fake-scorer-v1"

// Fake is the default Model: deterministic and local. The score comes
// from the lead's fields (a business email, a company, the source, notes
// that speak of budget or a demo); tokens are counted from text length,
// about four characters a token, as the commercial models bill.
type Fake struct{}

// Name returns FakeModelName.
func (Fake) Name() string { return FakeModelName }

// systemPromptTokens stands for the instructions every call carries.
const systemPromptTokens = 40

var freeMail = []string{"gmail.com", "hotmail.com", "outlook.com", "yahoo.com", "icloud.com"}

var sourceWeight = map[string]int{"referral": 25, "calendly": 20, "event": 15, "hubspot": 10, "website": 10}

var notesKeywords = []string{"budget", "demo", "pilot", "urgent", "contract"}

// Score computes the score from in's fields.
func (Fake) Score(ctx context.Context, in Input) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	score := 10
	var why []string
	if in.Email != "" {
		score += 10
		domain := strings.ToLower(in.Email[strings.LastIndexByte(in.Email, '@')+1:])
		business := true
		for _, d := range freeMail {
			business = business && domain != d
		}
		if business {
			score += 10
			why = append(why, "business email")
		} else {
			why = append(why, "personal email")
		}
	}
	if in.Company != "" {
		score += 20
		why = append(why, "company named")
	}
	if w := sourceWeight[strings.ToLower(in.Source)]; w > 0 {
		score += w
		why = append(why, "source "+strings.ToLower(in.Source))
	}
	if in.Notes != "" {
		score += min(len(in.Notes)/40, 10)
		notes := strings.ToLower(in.Notes)
		for _, k := range notesKeywords {
			if strings.Contains(notes, k) {
				score += 5
				why = append(why, "notes mention "+k)
			}
		}
	}
	score = min(score, 100)
	reason := "little known about the lead"
	if len(why) > 0 {
		reason = strings.Join(why, ", ")
	}
	out, _ := json.Marshal(struct {
		Score  int    `json:"score"`
		Reason string `json:"reason"`
	}{score, reason})
	return Result{
		Score:     score,
		Reason:    reason,
		TokensIn:  systemPromptTokens + tokens(in.Prompt()),
		TokensOut: tokens(string(out)),
	}, nil
}

// tokens estimates the tokens of s: a quarter of its bytes, rounded up.
func tokens(s string) int { return (len(s) + 3) / 4 }
