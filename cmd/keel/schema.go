package main

import (
	"github.com/spf13/cobra"

	"keel/profiles"
)

func newSchemaCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of keel profiles",
		Long: `Print the JSON Schema (draft 2020-12) of keel profiles, generated from the
Go types, so editors can complete and check profiles. For example, with the
YAML language server:

  keel schema > keel.schema.json
  # first line of a profile:  # yaml-language-server: $schema=keel.schema.json`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := profiles.Schema()
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(append(b, '\n'))
			return err
		},
	}
}
