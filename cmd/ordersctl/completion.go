package main

import (
	"github.com/spf13/cobra"
)

func (c *cli) completionCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "Print a shell completion script",
		Long: `Prints the completion script of ordersctl for a shell (commands, flags, orders|search, --output).

  bash: source <(ordersctl completion bash)            # this shell; needs the bash-completion package
        ordersctl completion bash > /etc/bash_completion.d/ordersctl
  zsh:  ordersctl completion zsh > "${fpath[1]}/_ordersctl"   # then start a new shell (compinit on)
  fish: ordersctl completion fish > ~/.config/fish/completions/ordersctl.fish`,
		ValidArgs: []cobra.Completion{"bash", "zsh", "fish"},
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 || (args[0] != "bash" && args[0] != "zsh" && args[0] != "fish") {
				return usageErrorf("want one shell: bash, zsh or fish")
			}
			return nil
		},
		RunE: func(_ *cobra.Command, args []string) error {
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(c.stdout, true)
			case "zsh":
				return root.GenZshCompletion(c.stdout)
			default:
				return root.GenFishCompletion(c.stdout, true)
			}
		},
	}
}
