//! Who may move a practice where: editors draft and submit; reviewers publish or send back
//! with a comment; admins may also archive. Only published (and later archived) practices
//! leave their home node or reach anonymous visitors.

use std::fmt;

/// Where a practice is in its review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum ReviewState {
    #[default]
    Draft,
    Submitted,
    Published,
    Archived,
}

impl ReviewState {
    pub const ALL: [ReviewState; 4] = [
        ReviewState::Draft,
        ReviewState::Submitted,
        ReviewState::Published,
        ReviewState::Archived,
    ];

    pub fn key(self) -> &'static str {
        match self {
            ReviewState::Draft => "draft",
            ReviewState::Submitted => "submitted",
            ReviewState::Published => "published",
            ReviewState::Archived => "archived",
        }
    }

    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.key() == key)
    }

    /// Published practices, and archived ones (which were published), are the network's
    /// shared record: visible to anyone, replicated to partners.
    pub fn is_public(self) -> bool {
        matches!(self, ReviewState::Published | ReviewState::Archived)
    }
}

impl fmt::Display for ReviewState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// A member's role at their organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Editor,
    Reviewer,
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Editor, Role::Reviewer, Role::Admin];

    pub fn key(self) -> &'static str {
        match self {
            Role::Editor => "editor",
            Role::Reviewer => "reviewer",
            Role::Admin => "admin",
        }
    }

    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.key() == key)
    }

    pub fn can_review(self) -> bool {
        self >= Role::Reviewer
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// The moves of the review flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewAction {
    /// Editor: draft → submitted.
    Submit,
    /// Reviewer: submitted (or draft) → published.
    Publish,
    /// Reviewer: submitted → draft, with a comment saying what is missing.
    SendBack,
    /// Admin: published → archived.
    Archive,
    /// Admin: archived → published.
    Restore,
    /// Anyone who may edit: a comment, no move.
    Comment,
}

impl ReviewAction {
    pub fn key(self) -> &'static str {
        match self {
            ReviewAction::Submit => "submit",
            ReviewAction::Publish => "publish",
            ReviewAction::SendBack => "send-back",
            ReviewAction::Archive => "archive",
            ReviewAction::Restore => "restore",
            ReviewAction::Comment => "comment",
        }
    }

    pub fn from_key(key: &str) -> Option<Self> {
        [
            ReviewAction::Submit,
            ReviewAction::Publish,
            ReviewAction::SendBack,
            ReviewAction::Archive,
            ReviewAction::Restore,
            ReviewAction::Comment,
        ]
        .into_iter()
        .find(|a| a.key() == key)
    }
}

/// Why a move is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    #[error("a {role} may not {action} a practice")]
    Role { role: Role, action: &'static str },
    #[error("a {from} practice cannot be {action}")]
    State {
        from: ReviewState,
        action: &'static str,
    },
    #[error("sending a practice back needs a comment saying what to change")]
    CommentRequired,
}

/// The state a move leads to, if this role may make it from this state.
pub fn transition(
    from: ReviewState,
    action: ReviewAction,
    role: Role,
    comment: &str,
) -> Result<ReviewState, ReviewError> {
    use ReviewAction as A;
    use ReviewState as S;
    let needs = |min: Role, name: &'static str| {
        if role >= min {
            Ok(())
        } else {
            Err(ReviewError::Role { role, action: name })
        }
    };
    let wrong_state = |name: &'static str| ReviewError::State { from, action: name };
    match action {
        A::Comment => Ok(from),
        A::Submit => match from {
            S::Draft => Ok(S::Submitted),
            _ => Err(wrong_state("submitted")),
        },
        A::Publish => {
            needs(Role::Reviewer, "publish")?;
            match from {
                S::Draft | S::Submitted => Ok(S::Published),
                _ => Err(wrong_state("published")),
            }
        }
        A::SendBack => {
            needs(Role::Reviewer, "send back")?;
            if comment.trim().is_empty() {
                return Err(ReviewError::CommentRequired);
            }
            match from {
                S::Submitted => Ok(S::Draft),
                _ => Err(wrong_state("sent back")),
            }
        }
        A::Archive => {
            needs(Role::Admin, "archive")?;
            match from {
                S::Published => Ok(S::Archived),
                _ => Err(wrong_state("archived")),
            }
        }
        A::Restore => {
            needs(Role::Admin, "restore")?;
            match from {
                S::Archived => Ok(S::Published),
                _ => Err(wrong_state("restored")),
            }
        }
    }
}

/// May this role move a practice from one state to another directly? Used to check changes
/// that arrive from peers, where only the before and after states are known.
pub fn may_change_state(from: ReviewState, to: ReviewState, role: Option<Role>) -> bool {
    use ReviewState as S;
    if from == to {
        return true;
    }
    let Some(role) = role else {
        return false;
    };
    match (from, to) {
        (S::Draft, S::Submitted) => true,
        (S::Submitted, S::Draft) => role.can_review(),
        (S::Draft | S::Submitted, S::Published) => role.can_review(),
        (S::Published, S::Archived) | (S::Archived, S::Published) => role >= Role::Admin,
        // A published practice withdrawn from publication (a mistake erased, see
        // `publication::withdraw`) goes back to draft.
        (S::Published | S::Archived, S::Draft) => role.can_review(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ReviewAction as A;
    use ReviewState as S;

    #[test]
    fn editors_draft_and_submit_reviewers_publish() {
        assert_eq!(
            transition(S::Draft, A::Submit, Role::Editor, ""),
            Ok(S::Submitted)
        );
        assert_eq!(
            transition(S::Submitted, A::Publish, Role::Editor, ""),
            Err(ReviewError::Role {
                role: Role::Editor,
                action: "publish"
            })
        );
        assert_eq!(
            transition(S::Submitted, A::Publish, Role::Reviewer, ""),
            Ok(S::Published)
        );
        assert_eq!(
            transition(S::Submitted, A::SendBack, Role::Reviewer, "  "),
            Err(ReviewError::CommentRequired)
        );
        assert_eq!(
            transition(S::Submitted, A::SendBack, Role::Reviewer, "add outcomes"),
            Ok(S::Draft)
        );
        assert_eq!(
            transition(S::Published, A::Archive, Role::Reviewer, ""),
            Err(ReviewError::Role {
                role: Role::Reviewer,
                action: "archive"
            })
        );
        assert_eq!(
            transition(S::Published, A::Archive, Role::Admin, ""),
            Ok(S::Archived)
        );
        assert_eq!(
            transition(S::Archived, A::Submit, Role::Admin, ""),
            Err(ReviewError::State {
                from: S::Archived,
                action: "submitted"
            })
        );
    }

    #[test]
    fn state_changes_from_peers_are_checked_by_role() {
        assert!(may_change_state(S::Draft, S::Submitted, Some(Role::Editor)));
        assert!(!may_change_state(
            S::Draft,
            S::Published,
            Some(Role::Editor)
        ));
        assert!(may_change_state(
            S::Submitted,
            S::Published,
            Some(Role::Reviewer)
        ));
        assert!(may_change_state(
            S::Published,
            S::Draft,
            Some(Role::Reviewer)
        ));
        assert!(!may_change_state(
            S::Published,
            S::Draft,
            Some(Role::Editor)
        ));
        assert!(!may_change_state(S::Published, S::Draft, None));
        assert!(!may_change_state(S::Draft, S::Submitted, None));
        assert!(may_change_state(S::Published, S::Published, None));
    }
}
