package metadata_test

import (
	"strings"
	"testing"

	"github.com/manifold-grpc/manifold/filters/metadata"
)

func TestDefaultLayout(t *testing.T) {
	t.Parallel()
	want := metadata.Layout{ItemsField: 1, MetadataField: 1, HostnameField: 1, ErrorField: 2, StatusField: 3}
	if got := metadata.DefaultLayout(); got != want {
		t.Errorf("DefaultLayout() = %+v, want %+v", got, want)
	}
	if got := (metadata.Layout{}).WithDefaults(); got != want {
		t.Errorf("Layout{}.WithDefaults() = %+v, want %+v", got, want)
	}
	if err := metadata.DefaultLayout().Validate(); err != nil {
		t.Errorf("DefaultLayout().Validate() = %v", err)
	}
}

func TestWithDefaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   metadata.Layout
		want metadata.Layout
	}{
		{"zero", metadata.Layout{}, metadata.DefaultLayout()},
		{
			"all set",
			metadata.Layout{ItemsField: 5, MetadataField: 15, HostnameField: 2, ErrorField: 3, StatusField: 4},
			metadata.Layout{ItemsField: 5, MetadataField: 15, HostnameField: 2, ErrorField: 3, StatusField: 4},
		},
		{
			"some set",
			metadata.Layout{MetadataField: 7, ErrorField: 9},
			metadata.Layout{ItemsField: 1, MetadataField: 7, HostnameField: 1, ErrorField: 9, StatusField: 3},
		},
		{
			"negative kept",
			metadata.Layout{ItemsField: -1},
			metadata.Layout{ItemsField: -1, MetadataField: 1, HostnameField: 1, ErrorField: 2, StatusField: 3},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.in.WithDefaults(); got != tt.want {
				t.Errorf("WithDefaults() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		layout  metadata.Layout
		wantErr string // substring; empty for no error
	}{
		{"zero", metadata.Layout{}, ""},
		{"custom", metadata.Layout{ItemsField: 5, MetadataField: 15, HostnameField: 2, ErrorField: 3, StatusField: 4}, ""},
		{"items equal metadata", metadata.Layout{ItemsField: 7, MetadataField: 7}, ""},
		{"metadata equal hostname", metadata.Layout{MetadataField: 1, HostnameField: 1}, ""},
		{"largest", metadata.Layout{ItemsField: 1<<29 - 1}, ""},
		{"around reserved", metadata.Layout{HostnameField: 18999, ErrorField: 20000}, ""},
		{"negative items", metadata.Layout{ItemsField: -1}, "metadata: items_field: -1 is not a valid field number"},
		{"too large metadata", metadata.Layout{MetadataField: 1 << 29}, "metadata: metadata_field: 536870912 is not a valid field number"},
		{"reserved hostname", metadata.Layout{HostnameField: 19000}, "metadata: hostname_field: 19000 is in the reserved range 19000-19999"},
		{"reserved error", metadata.Layout{ErrorField: 19999}, "metadata: error_field: 19999 is in the reserved range"},
		{"reserved status", metadata.Layout{StatusField: 19500}, "metadata: status_field: 19500 is in the reserved range"},
		{"error is hostname", metadata.Layout{ErrorField: 1}, "metadata: error_field: 1 is also hostname_field"},
		{"status is error", metadata.Layout{StatusField: 2}, "metadata: status_field: 2 is also error_field"},
		{"status is hostname", metadata.Layout{HostnameField: 9, StatusField: 9}, "metadata: status_field: 9 is also hostname_field"},
		{"hostname defaults into error", metadata.Layout{HostnameField: 0, ErrorField: 1}, "error_field: 1 is also hostname_field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.layout.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && err == nil:
				t.Errorf("Validate() = nil, want error containing %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Errorf("Validate() = %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}
