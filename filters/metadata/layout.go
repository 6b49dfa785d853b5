package metadata

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// Default field numbers: Talos' common.Metadata, one per item in field 1,
// unary items in repeated field 1 of the response.
const (
	defaultItemsField    protowire.Number = 1
	defaultMetadataField protowire.Number = 1
	defaultHostnameField protowire.Number = 1
	defaultErrorField    protowire.Number = 2
	defaultStatusField   protowire.Number = 3
)

// Layout tells where the metadata goes in a response. A zero field means its
// default, so the zero Layout is the Talos-compatible [DefaultLayout]. Every
// function of this package fills in the defaults itself; call
// [Layout.Validate] once at load time to reject a bad configuration.
type Layout struct {
	// ItemsField is the repeated message field of a unary (or
	// client-streaming) response that holds the items, one entry per item.
	// Default 1.
	ItemsField protowire.Number `yaml:"items_field"`
	// MetadataField is the message field of each item that holds its
	// metadata. Default 1.
	MetadataField protowire.Number `yaml:"metadata_field"`
	// HostnameField is the string field of the metadata message that holds
	// the name of the upstream that produced the item. Default 1.
	HostnameField protowire.Number `yaml:"hostname_field"`
	// ErrorField is the string field of the metadata message that holds the
	// error text of an upstream that failed. Default 2.
	ErrorField protowire.Number `yaml:"error_field"`
	// StatusField is the google.rpc.Status field of the metadata message
	// that holds the status of an upstream that failed. Default 3.
	StatusField protowire.Number `yaml:"status_field"`
}

// DefaultLayout returns the layout of Talos' common.Metadata: items in field
// 1 of the response, metadata in field 1 of each item, and in it hostname 1,
// error 2 and status 3.
func DefaultLayout() Layout {
	return Layout{
		ItemsField:    defaultItemsField,
		MetadataField: defaultMetadataField,
		HostnameField: defaultHostnameField,
		ErrorField:    defaultErrorField,
		StatusField:   defaultStatusField,
	}
}

// WithDefaults returns l with each zero field replaced by its default.
func (l Layout) WithDefaults() Layout {
	if l.ItemsField == 0 {
		l.ItemsField = defaultItemsField
	}
	if l.MetadataField == 0 {
		l.MetadataField = defaultMetadataField
	}
	if l.HostnameField == 0 {
		l.HostnameField = defaultHostnameField
	}
	if l.ErrorField == 0 {
		l.ErrorField = defaultErrorField
	}
	if l.StatusField == 0 {
		l.StatusField = defaultStatusField
	}
	return l
}

// Validate reports whether l, with its defaults filled in, can be used: every
// field number is a valid protobuf field number outside the reserved range
// 19000-19999, and the hostname, error and status fields are distinct. The
// error names the offending field by its YAML key.
func (l Layout) Validate() error {
	l = l.WithDefaults()
	fields := [...]struct {
		name string
		num  protowire.Number
	}{
		{"items_field", l.ItemsField},
		{"metadata_field", l.MetadataField},
		{"hostname_field", l.HostnameField},
		{"error_field", l.ErrorField},
		{"status_field", l.StatusField},
	}
	for _, f := range fields {
		switch {
		case f.num >= protowire.FirstReservedNumber && f.num <= protowire.LastReservedNumber:
			return fmt.Errorf("metadata: %s: %d is in the reserved range %d-%d",
				f.name, f.num, protowire.FirstReservedNumber, protowire.LastReservedNumber)
		case !f.num.IsValid():
			return fmt.Errorf("metadata: %s: %d is not a valid field number (%d-%d)",
				f.name, f.num, protowire.MinValidNumber, protowire.MaxValidNumber)
		}
	}
	// hostname, error and status share the metadata message.
	inner := fields[2:]
	for i := range inner {
		for j := range i {
			if inner[i].num == inner[j].num {
				return fmt.Errorf("metadata: %s: %d is also %s", inner[i].name, inner[i].num, inner[j].name)
			}
		}
	}
	return nil
}
